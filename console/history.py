"""The wallet history: every ledger entry, with the balance after it, newest first.

Usage is one ledger entry per request; the history shows it as one line per UTC day (with the
number of requests), so a busy account's page is not thousands of lines of fractions of a
credit. Every other entry (top-ups, refunds, grants, codes, operator adjustments) is its own
line. The balance after each line is walked back from the live balance, so the newest line
always matches the balance shown at the top of the page.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from django.db.models import Count, Max, Sum
from django.db.models.functions import TruncDate

from billing.models import LedgerEntry, LedgerKind, Wallet


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    kind: str
    label: str
    detail: str
    amount_micros: int
    balance_after_micros: int


def wallet_history(account_id: int) -> list[HistoryLine]:
    entries = LedgerEntry.objects.filter(account_id=account_id)
    singles = [
        (e.created_at, e.kind, e.get_kind_display(), e.reason or e.reference, e.amount_micros)
        for e in entries.exclude(kind=LedgerKind.USAGE).order_by("-created_at", "-id")
    ]
    usage_days = (
        entries.filter(kind=LedgerKind.USAGE)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day")
        .annotate(total=Sum("amount_micros"), n=Count("id"), last=Max("created_at"))
        .order_by()
    )
    days = [
        (
            _end_of(row["day"], row["last"]),
            LedgerKind.USAGE.value,
            f"Usage on {row['day']:%Y-%m-%d}",
            f"{row['n']} request{'s' if row['n'] != 1 else ''}",
            row["total"],
        )
        for row in usage_days
    ]
    lines = sorted(singles + days, key=lambda line: line[0], reverse=True)
    balance = (
        Wallet.objects.filter(account_id=account_id)
        .values_list("balance_micros", flat=True)
        .first()
        or 0
    )
    out = []
    for at, kind, label, detail, amount in lines:
        out.append(HistoryLine(at, kind, label, detail, amount, balance))
        balance -= amount
    return out


def _end_of(day: date, last: datetime) -> datetime:
    """A day's usage line sits at its last request (today's moves as requests come in)."""
    return last if last else datetime.combine(day, time.max, tzinfo=UTC)
