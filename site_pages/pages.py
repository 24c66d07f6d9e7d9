"""The public legal and trust pages' content: legal texts with the operator's details filled in,
pricing facts, provider health per region, and what operators posted."""

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from django.conf import settings
from django.template import engines
from django_countries import countries

from billing.checkout import eur_to_cents
from billing.money import format_eur
from billing.vat import SELLER_COUNTRY, compute_vat_cents, get_standard_rate
from catalog.models import ProviderStatus
from catalog.pages import format_published
from catalog.snapshot import CatalogSnapshot
from docs_site.rendering import render_markdown
from routing.health import SlotHealth, SlotState, read_health
from routing.router import snapshot_slots

TEXTS_DIR = Path(__file__).resolve().parent / "texts"
LEGAL_TITLES = {"privacy": "Privacy policy", "terms": "Terms of service", "impressum": "Impressum"}


def get_legal_context() -> dict[str, Any]:
    seller = settings.LOWROUTER_SELLER
    return {
        "seller": seller,
        "country": countries.name(seller.get("country", "")) or seller.get("country", ""),
        "retention_months": settings.LOWROUTER_RECORD_RETENTION_MONTHS,
        "refund_days": settings.LOWROUTER_REFUND_WINDOW_DAYS,
        "topup_fee": f"{settings.LOWROUTER_TOPUP_FEE_EUR:.2f}",
    }


def render_legal_text(slug: str) -> str:
    """The Markdown text of ``slug`` with the operator's details put in (HTML-escaped by the
    template engine), as HTML."""
    source = (TEXTS_DIR / f"{slug}.md").read_text(encoding="utf-8")
    filled = engines["django"].from_string(source).render(get_legal_context())
    return render_markdown(filled)


@dataclass(frozen=True)
class StatusRow:
    provider_id: str
    provider_name: str
    region: str
    state: str  # a SlotState, or "disabled" for a provider the operator switched off
    detail: str
    latency_ms: int | None


def describe_slot(health: SlotHealth, now: float) -> str:
    if health.state == SlotState.UNAVAILABLE:
        seconds = max(1, round(health.until - now))
        return f"skipped for the next {seconds} s after {health.reason or 'errors'}"
    if health.state == SlotState.DEGRADED:
        return f"recovering from {health.failures} recent failure(s)"
    return ""


def build_status_rows(snapshot: CatalogSnapshot, *, now: float) -> list[StatusRow]:
    """One row per (provider, region) the router can route to, with the health every process
    shares (routing.health)."""
    slots = snapshot_slots(snapshot)
    health = read_health(slots)
    rows = []
    for provider_id, region in slots:
        provider = snapshot.providers.get(provider_id)
        if provider is None:
            continue
        slot = health[(provider_id, region)]
        disabled = provider.status == ProviderStatus.UNAVAILABLE
        rows.append(
            StatusRow(
                provider_id=provider_id,
                provider_name=provider.name,
                region=region,
                state="disabled" if disabled else slot.state,
                detail="switched off by the operator" if disabled else describe_slot(slot, now),
                latency_ms=None if slot.latency_ms is None else round(slot.latency_ms),
            )
        )
    return sorted(rows, key=lambda r: (r.provider_name.lower(), r.region))


def summarize_platform_fees(snapshot: CatalogSnapshot) -> tuple[str, str] | None:
    """The lowest and highest platform fee per 1M tokens across the catalogue's models."""
    fees = [m.platform_fee_eur for m in snapshot.models.values() if m.platform_fee_eur]
    if not fees:
        return None
    return format_published(min(fees)), format_published(max(fees))


def get_pricing_context(snapshot: CatalogSnapshot, *, today: date) -> dict[str, Any]:
    fee = settings.LOWROUTER_TOPUP_FEE_EUR
    # A worked example: a 20 EUR top-up by a consumer in the seller's country.
    net_cents = eur_to_cents(20 + fee)
    try:
        rate = get_standard_rate(country=SELLER_COUNTRY, on=today)
    except LookupError:
        rate = None
    vat_cents = compute_vat_cents(net_cents, rate) if rate is not None else 0
    return {
        "fee_range": summarize_platform_fees(snapshot),
        "topup_fee": f"{fee:.2f}",
        "topup_min": f"{settings.LOWROUTER_TOPUP_MIN_EUR:.2f}",
        "topup_max": f"{settings.LOWROUTER_TOPUP_MAX_EUR:.2f}",
        "notice_days": settings.LOWROUTER_FEE_NOTICE_DAYS,
        "refund_days": settings.LOWROUTER_REFUND_WINDOW_DAYS,
        "example": {
            "net": format_eur(net_cents),
            "rate": None if rate is None else f"{rate.normalize():f}",
            "vat": format_eur(vat_cents),
            "gross": format_eur(net_cents + vat_cents),
        },
    }
