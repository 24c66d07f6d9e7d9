"""The transactions of a filtered range as CSV, written row by row as the database yields them.

Columns are the per-request record of the usage-accounting page, plus the key's name; numbers
are plain decimals (never an exponent), times ISO 8601 in UTC. At most ``EXPORT_CAP`` rows: when
the range holds more, the last line of the file says so (and so does the page).
"""

import csv
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet

from billing.models import Generation
from billing.money import micros_to_credits

EXPORT_CAP = 50_000

COLUMNS = (
    "generation_id",
    "created_at",
    "completed_at",
    "key_id",
    "key_name",
    "requested_model",
    "resolved_model",
    "provider",
    "region",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "latency_ms",
    "cost_credits",
    "eco_energy_wh",
    "eco_carbon_g",
    "eco_carbon_per_1k_tokens_g",
    "eco_accuracy",
    "eco_methodology_version",
    "status",
    "error_code",
    "usage_source",
)


class _Line:
    """A file-like object whose write() returns the line, for csv.writer to stream through."""

    def write(self, value: str) -> str:
        return value


def plain_decimal(value: float | None) -> str:
    """A float as a plain decimal string: 1.2e-05 becomes 0.000012 (shortest exact repr)."""
    if value is None:
        return ""
    return format(Decimal(repr(value)), "f")


def _iso(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else ""


def row_of(gen: Generation) -> list[object]:
    return [
        gen.id,
        _iso(gen.created_at),
        _iso(gen.completed_at),
        gen.key_id or "",
        gen.key.name if gen.key else "",
        gen.requested_model,
        gen.resolved_model,
        gen.provider,
        gen.region,
        gen.prompt_tokens,
        gen.completion_tokens,
        gen.total_tokens,
        "" if gen.latency_ms is None else gen.latency_ms,
        micros_to_credits(gen.cost_micros),
        plain_decimal(gen.energy_wh),
        plain_decimal(gen.carbon_g),
        plain_decimal(gen.carbon_per_1k_tokens_g),
        gen.eco_accuracy,
        gen.methodology_version,
        gen.status,
        gen.error_code,
        gen.usage_source,
    ]


def csv_lines(records: QuerySet[Generation], *, cap: int = EXPORT_CAP) -> Iterator[str]:
    """The header, at most ``cap`` rows, and a closing note when the cap cut the export."""
    writer = csv.writer(_Line())
    yield writer.writerow(COLUMNS)
    for written, gen in enumerate(records[: cap + 1].iterator(chunk_size=2000)):
        if written == cap:
            yield f"# capped at {cap} rows: narrow the date range to export the rest\r\n"
            return
        yield writer.writerow(row_of(gen))
