"""Charts drawn on the server as inline SVG: no chart library to download, nothing from a CDN.

Each function returns markup for one chart; every mark carries a ``<title>`` (the browser's
hover detail) and the page puts a table with the same numbers beside each chart for screen
readers and for copying. Coordinates are in a fixed viewBox that CSS scales to the width.
"""

import math
from collections.abc import Callable, Sequence
from datetime import date

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#0b6e4f", "#2f6fb0", "#c0622b", "#7a4fa3", "#b0902f", "#3a8f99", "#a33b5c", "#5b6670")
WIDTH, HEIGHT = 600, 160


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _svg(label: str, body: str, height: int = HEIGHT) -> SafeString:
    return mark_safe(  # noqa: S308 (every value below went through escape() or is a number)
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="none">{body}</svg>'
    )


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _frame(label: str, body: str, top: str, first: date | None, last: date | None) -> SafeString:
    """The SVG stretches to the page's width, so its labels are HTML around it (text inside a
    stretched SVG would be distorted)."""
    ends = (
        format_html(
            '<span class="tick">{}</span><span class="tick">{}</span>',
            f"{first:%b %d}",
            f"{last:%b %d}",
        )
        if first and last
        else ""
    )
    return format_html(
        '<div class="chart-frame"><span class="tick top">{}</span>{}<div class="chart-ends">{}'
        "</div></div>",
        top,
        _svg(label, body),
        ends,
    )


def stacked_columns(
    label: str,
    days: Sequence[date],
    series: dict[str, list[int]],
    fmt: Callable[[float], str],
) -> SafeString:
    """One column per day, stacked by series (in the order given), scaled to the tallest."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    top = _nice_max(max(totals, default=0))
    slot = WIDTH / max(1, len(days))
    bar = max(1.0, slot * 0.7)
    usable = HEIGHT - 8
    parts = [f'<line x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}" class="axis"/>']
    for i, day in enumerate(days):
        x = i * slot + (slot - bar) / 2
        y = float(HEIGHT)
        for s, (name, values) in enumerate(series.items()):
            if not values[i]:
                continue
            h = values[i] / top * usable
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour(s)}"><title>{day:%Y-%m-%d} {escape(name)}: '
                f"{escape(fmt(values[i]))}</title></rect>"
            )
    first, last = (days[0], days[-1]) if days else (None, None)
    return _frame(label, "".join(parts), fmt(top), first, last)


def columns(
    label: str, days: Sequence[date], values: list[int], fmt: Callable[[float], str]
) -> SafeString:
    return stacked_columns(label, days, {label: values}, fmt)


def donut(label: str, shares: Sequence[tuple[str, float, str]]) -> SafeString:
    """Wedges as dashed strokes of one circle: (name, fraction 0..1, hover text)."""
    r, c = 60, 2 * math.pi * 60
    parts = [f'<circle cx="90" cy="90" r="{r}" class="ring"/>']
    offset = 0.0
    for i, (name, fraction, detail) in enumerate(shares):
        length = fraction * c
        parts.append(
            f'<circle cx="90" cy="90" r="{r}" fill="none" stroke="{colour(i)}" stroke-width="34" '
            f'stroke-dasharray="{length:.2f} {c - length:.2f}" stroke-dashoffset="{-offset:.2f}" '
            f'transform="rotate(-90 90 90)">'
            f"<title>{escape(name)}: {escape(detail)}</title></circle>"
        )
        offset += length
    return mark_safe(  # noqa: S308 (escaped above)
        f'<svg class="donut" viewBox="0 0 180 180" role="img" aria-label="{escape(label)}">'
        + "".join(parts)
        + "</svg>"
    )


def swatch(index: int) -> SafeString:
    return format_html('<span class="swatch" style="background:{}"></span>', colour(index))
