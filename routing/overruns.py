"""Upstreams that produce more output than the bound they were sent: the operator's alert.

The gateway sends every upstream the exact output-token bound its credit hold covers
(``routing/gateway.py``), so an answer longer than that is the provider's fault, and what lies
beyond the hold may be paid to the provider without being recoverable from the customer. Each
incident is logged (provider, model, generation id, tokens over; never any text) and recorded,
and the admin index shows the last week's incidents by provider (``routing/admin.py``).
"""

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from billing.money import micros_to_credits
from routing.models import UpstreamOverrun

log = logging.getLogger(__name__)

ALERT_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Overrun:
    generation_id: str
    provider: str
    region: str
    model: str
    bound_tokens: int
    completion_tokens: int
    unbilled_micros: int


def log_overrun(overrun: Overrun) -> None:
    log.error(
        "upstream overran its output bound: provider=%s region=%s model=%s generation=%s "
        "bound=%d completion_tokens=%d over=%d unbilled_credits=%s",
        overrun.provider,
        overrun.region,
        overrun.model,
        overrun.generation_id,
        overrun.bound_tokens,
        overrun.completion_tokens,
        overrun.completion_tokens - overrun.bound_tokens,
        micros_to_credits(overrun.unbilled_micros),
    )


def record_overrun(overrun: Overrun) -> None:
    UpstreamOverrun.objects.create(created_at=timezone.now(), **asdict(overrun))


def overrun_alert(now: datetime | None = None) -> str:
    """The admin banner's text, or "" when no upstream overran its bound in the window."""
    since = (now or timezone.now()) - ALERT_WINDOW
    rows = (
        UpstreamOverrun.objects.filter(created_at__gte=since)
        .values("provider")
        .annotate(incidents=Count("id"), unbilled=Sum("unbilled_micros"))
        .order_by("-unbilled", "provider")
    )
    parts = [
        f"{r['provider']}: {r['incidents']} response(s), "
        f"{micros_to_credits(r['unbilled'] or 0)} credits unbilled"
        for r in rows
    ]
    if not parts:
        return ""
    return (
        "Upstreams answered beyond the output-token bound they were sent in the last 7 days "
        "(the excess over what keys and wallets could pay was not charged): " + "; ".join(parts)
    )
