"""The daily usage aggregates and the records they summarise: reading them, and checking that
they agree.

Settlement adds each request to its ``DailyUsage`` slice (account, UTC day, model, key,
provider, region) in the statement that writes its record, so the two always agree while the
records exist. ``reconcile_daily_usage`` proves it (and repairs a slice when asked), for an
operator who doubts a chart; the ``reconcile_daily_usage`` command runs it.
"""

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate

from billing.models import DailyUsage, Generation

SliceKey = tuple[int, date, str, int | None, str, str]

_TOTALS = {
    "requests": Count("id"),
    "prompt_tokens": Coalesce(Sum("prompt_tokens"), 0),
    "completion_tokens": Coalesce(Sum("completion_tokens"), 0),
    "cost_micros": Coalesce(Sum("cost_micros"), 0),
    "energy_wh": Coalesce(Sum("energy_wh"), 0.0),
    "carbon_g": Coalesce(Sum("carbon_g"), 0.0),
}
_FIELDS = tuple(_TOTALS)


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The UTC instants that start ``first`` and end ``last`` (exclusive)."""
    return (
        datetime.combine(first, time.min, tzinfo=UTC),
        datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC),
    )


def records_between(first: date, last: date) -> QuerySet[Generation]:
    start, end = day_bounds(first, last)
    return Generation.objects.filter(created_at__gte=start, created_at__lt=end)


def totals_from_records(records: QuerySet[Generation]) -> dict[SliceKey, dict]:
    """The records summed per aggregate slice, as settlement would have summed them."""
    rows = (
        records.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values(
            "account_id", "day", "resolved_model", "requested_model", "key_id", "provider", "region"
        )
        .annotate(**_TOTALS)
        .order_by()
    )
    out: dict[SliceKey, dict] = {}
    for raw in rows:
        row: dict[str, Any] = dict(raw)
        model = row["resolved_model"] or row["requested_model"]
        key = (row["account_id"], row["day"], model, row["key_id"], row["provider"], row["region"])
        into = out.setdefault(key, dict.fromkeys(_FIELDS, 0))
        for name in _FIELDS:
            into[name] += row[name]
    return out


def _totals_from_aggregates(aggregates: QuerySet[DailyUsage]) -> dict[SliceKey, dict]:
    return {
        (u.account_id, u.day, u.model, u.key_id, u.provider, u.region): {
            name: getattr(u, name) for name in _FIELDS
        }
        for u in aggregates
    }


@dataclass(frozen=True)
class Mismatch:
    slice: SliceKey
    records: dict | None
    aggregate: dict | None


def _same(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return a is b
    for name in _FIELDS:
        if isinstance(a[name], float) or isinstance(b[name], float):
            if not math.isclose(a[name], b[name], rel_tol=1e-9, abs_tol=1e-9):
                return False
        elif a[name] != b[name]:
            return False
    return True


def reconcile_daily_usage(
    *, first: date, last: date, account_id: int | None = None, fix: bool = False
) -> list[Mismatch]:
    """Compare the aggregates of the days ``first``..``last`` with the records of those days;
    with ``fix``, rewrite each slice that differs from its records. Only meaningful while the
    records of those days exist (they are kept for the retention period)."""
    records = records_between(first, last)
    aggregates = DailyUsage.objects.filter(day__gte=first, day__lte=last)
    if account_id is not None:
        records = records.filter(account_id=account_id)
        aggregates = aggregates.filter(account_id=account_id)
    expected = totals_from_records(records)
    found = _totals_from_aggregates(aggregates)
    mismatches = [
        Mismatch(key, expected.get(key), found.get(key))
        for key in sorted(set(expected) | set(found), key=str)
        if not _same(expected.get(key), found.get(key))
    ]
    if fix and mismatches:
        _rewrite(mismatches)
    return mismatches


@transaction.atomic
def _rewrite(mismatches: list[Mismatch]) -> None:
    for m in mismatches:
        account_id, day, model, key_id, provider, region = m.slice
        where = Q(account_id=account_id, day=day, model=model, provider=provider, region=region)
        where &= Q(key__isnull=True) if key_id is None else Q(key_id=key_id)
        DailyUsage.objects.filter(where).delete()
        if m.records is not None:
            DailyUsage.objects.create(
                account_id=account_id,
                day=day,
                model=model,
                key_id=key_id,
                provider=provider,
                region=region,
                **m.records,
            )
