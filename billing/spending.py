"""Reserve, then settle: how a request spends credit without ever overspending.

Before the upstream call, ``reserve_credits`` holds the request's worst-case cost against the
account's balance and the key's daily and monthly spend, with conditional UPDATEs that only match
when the hold fits. Concurrent requests therefore queue on row locks and each sees the others'
holds: N parallel requests can never reserve more than the balance or a limit allows.

``settle_generation`` then writes, in one transaction, the generation record, the ledger debit at
the real usage, the key's spend counters and the daily aggregate, and releases the hold. Every
outcome settles (success, upstream error, disconnect, timeout); a hold orphaned by a dead process
is released by ``release_orphaned_holds`` (a periodic task).
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Q, Sum, Value
from django.utils import timezone

from billing.ledger import InsufficientBalance, post_entry
from billing.models import (
    DailyUsage,
    Generation,
    Hold,
    KeySpend,
    LedgerKind,
    SpendPeriod,
    Wallet,
)
from billing.money import credits_to_micros, format_credits, micros_to_credits
from keys.auth import KeyContext

# Holds older than this belong to a process that died: no request lives this long.
ORPHAN_AFTER = timedelta(minutes=30)


class SpendRefused(Exception):
    """The worst case of the request does not fit a balance or a key limit."""

    def __init__(
        self, *, status: int, code: str, limit: str, remaining_micros: int, message: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.limit = limit
        self.remaining_micros = remaining_micros
        self.message = message
        self.retry_after: int | None = None


@dataclass(frozen=True)
class HoldTicket:
    hold_id: int
    account_id: int
    key_id: int
    amount_micros: int
    day: date
    month: date
    # The account's balance once this hold was placed (for the X-Credit-Balance header).
    balance_micros: int = 0


@dataclass
class Settlement:
    """What a request consumed and how it ended, as the gateway knows it at the end."""

    requested_model: str
    status: str
    resolved_model: str = ""
    provider: str = ""
    region: str = ""
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    latency_ms: int | None = None
    cost_micros: int = 0
    prompt_price_eur: Decimal | None = None
    completion_price_eur: Decimal | None = None
    cached_prompt_price_eur: Decimal | None = None
    platform_fee_eur: Decimal | None = None
    error_code: str = ""
    routing_trace: dict = field(default_factory=dict)
    created_at: datetime | None = None
    generation_id: str | None = None
    eco: dict = field(default_factory=dict)  # energy_wh, carbon_g, ... and eco_inputs


def period_starts(now: datetime) -> tuple[date, date]:
    day = now.date()
    return day, day.replace(day=1)


def seconds_until_reset(period: str, now: datetime) -> int:
    """Seconds to the next UTC midnight (day) or the first of next month (month)."""
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == SpendPeriod.DAY:
        reset = midnight
    else:
        first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        reset = (first + timedelta(days=32)).replace(day=1)
    return max(1, int((reset - now).total_seconds()))


# Rows known to exist, per process: saves an INSERT per request on the hot path.
_known_spend_rows: set[tuple[int, str, date]] = set()


def _ensure_spend_rows(key_id: int, day: date, month: date) -> None:
    wanted = [(key_id, SpendPeriod.DAY, day), (key_id, SpendPeriod.MONTH, month)]
    missing = [w for w in wanted if w not in _known_spend_rows]
    if missing:
        KeySpend.objects.bulk_create(
            [KeySpend(key_id=k, period=p, period_start=s) for k, p, s in missing],
            ignore_conflicts=True,
        )
        _known_spend_rows.update(missing)


def _reserve_key_period(
    *, key_id: int, key_name: str, period: str, start: date, limit, amount: int, now: datetime
) -> None:
    rows = KeySpend.objects.filter(key_id=key_id, period=period, period_start=start)
    limit_micros = credits_to_micros(limit) if limit is not None else None
    # Matches only when spent + reserved + this hold stays within the limit.
    fits = (
        rows
        if limit_micros is None
        else rows.filter(reserved_micros__lte=Value(limit_micros - amount) - F("spent_micros"))
    )
    if fits.update(reserved_micros=F("reserved_micros") + amount) == 1:
        return
    row = rows.values("spent_micros", "reserved_micros").first()
    if row is None:
        # The per-process cache of existing rows was wrong (never in production, where rows
        # are never deleted; after a test flush it can be): create the row and try once more.
        day, month = period_starts(now)
        _known_spend_rows.difference_update(
            {(key_id, SpendPeriod.DAY, day), (key_id, SpendPeriod.MONTH, month)}
        )
        _ensure_spend_rows(key_id, day, month)
        if fits.update(reserved_micros=F("reserved_micros") + amount) == 1:
            return
        row = rows.values("spent_micros", "reserved_micros").first() or {}
    if limit_micros is None:
        raise RuntimeError(f"key spend row for key {key_id} could not be created")
    remaining = max(0, limit_micros - row.get("spent_micros", 0) - row.get("reserved_micros", 0))
    label = "daily" if period == SpendPeriod.DAY else "monthly"
    refused = SpendRefused(
        status=429,
        code=f"key_{label}_limit_exceeded",
        limit=f"{label}_credit_limit",
        remaining_micros=remaining,
        message=(
            f"API key '{key_name}' has reached its {label} credit limit "
            f"({format_credits(limit_micros)}): {format_credits(remaining)} credits left"
        ),
    )
    refused.retry_after = seconds_until_reset(period, now)
    raise refused


@transaction.atomic
def reserve_credits(
    *,
    account_id: int,
    key_id: int,
    key_name: str,
    daily_limit: Decimal | None,
    monthly_limit: Decimal | None,
    amount_micros: int,
    now: datetime | None = None,
) -> HoldTicket:
    """Hold ``amount_micros`` against the balance and the key's limits, or raise SpendRefused."""
    now = now or timezone.now()
    day, month = period_starts(now)
    held = Wallet.objects.filter(
        account_id=account_id, balance_micros__gte=F("reserved_micros") + amount_micros
    ).update(reserved_micros=F("reserved_micros") + amount_micros)
    if held != 1:
        wallet = Wallet.objects.filter(account_id=account_id).values(
            "balance_micros", "reserved_micros"
        )
        w = wallet.first() or {"balance_micros": 0, "reserved_micros": 0}
        remaining = max(0, w["balance_micros"] - w["reserved_micros"])
        raise SpendRefused(
            status=402,
            code="insufficient_credits",
            limit="balance",
            remaining_micros=remaining,
            message=f"Insufficient credits: {format_credits(remaining)} credits available",
        )
    _ensure_spend_rows(key_id, day, month)
    _reserve_key_period(
        key_id=key_id,
        key_name=key_name,
        period=SpendPeriod.DAY,
        start=day,
        limit=daily_limit,
        amount=amount_micros,
        now=now,
    )
    _reserve_key_period(
        key_id=key_id,
        key_name=key_name,
        period=SpendPeriod.MONTH,
        start=month,
        limit=monthly_limit,
        amount=amount_micros,
        now=now,
    )
    hold = Hold.objects.create(
        account_id=account_id, key_id=key_id, amount_micros=amount_micros, day=day, month=month
    )
    return HoldTicket(
        hold_id=hold.id,
        account_id=account_id,
        key_id=key_id,
        amount_micros=amount_micros,
        day=day,
        month=month,
        balance_micros=balance_of(account_id),
    )


def balance_of(account_id: int) -> int:
    return (
        Wallet.objects.filter(account_id=account_id)
        .values_list("balance_micros", flat=True)
        .first()
        or 0
    )


def _move_key_spend(hold: HoldTicket, *, release: int, spend: int) -> None:
    for period, start in ((SpendPeriod.DAY, hold.day), (SpendPeriod.MONTH, hold.month)):
        KeySpend.objects.filter(key_id=hold.key_id, period=period, period_start=start).update(
            reserved_micros=F("reserved_micros") - release,
            spent_micros=F("spent_micros") + spend,
        )


def _add_daily_usage(gen: Generation) -> None:
    day = gen.created_at.date()
    model = gen.resolved_model or gen.requested_model
    DailyUsage.objects.bulk_create(
        [DailyUsage(account_id=gen.account_id, day=day, model=model)], ignore_conflicts=True
    )
    DailyUsage.objects.filter(account_id=gen.account_id, day=day, model=model).update(
        requests=F("requests") + 1,
        prompt_tokens=F("prompt_tokens") + gen.prompt_tokens,
        completion_tokens=F("completion_tokens") + gen.completion_tokens,
        cost_micros=F("cost_micros") + gen.cost_micros,
        energy_wh=F("energy_wh") + (gen.energy_wh or 0),
        carbon_g=F("carbon_g") + (gen.carbon_g or 0),
    )


@transaction.atomic
def settle_generation(*, hold: HoldTicket, outcome: Settlement) -> tuple[Generation, int]:
    """Record the generation, debit what it really cost, and release the hold, atomically.

    Returns the generation and the account's balance after it."""
    # If the orphan reaper already released this hold, its counters were given back already.
    release = hold.amount_micros if Hold.objects.filter(pk=hold.hold_id).delete()[0] else 0
    charge = max(0, outcome.cost_micros)
    eco = outcome.eco
    gen = Generation(
        **({"id": outcome.generation_id} if outcome.generation_id else {}),
        account_id=hold.account_id,
        key_id=hold.key_id,
        created_at=outcome.created_at or timezone.now(),
        completed_at=timezone.now(),
        requested_model=outcome.requested_model,
        resolved_model=outcome.resolved_model,
        provider=outcome.provider,
        region=outcome.region,
        stream=outcome.stream,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        cached_prompt_tokens=outcome.cached_prompt_tokens,
        total_tokens=outcome.prompt_tokens + outcome.completion_tokens,
        latency_ms=outcome.latency_ms,
        prompt_price_eur=outcome.prompt_price_eur,
        completion_price_eur=outcome.completion_price_eur,
        cached_prompt_price_eur=outcome.cached_prompt_price_eur,
        platform_fee_eur=outcome.platform_fee_eur,
        status=outcome.status,
        error_code=outcome.error_code,
        routing_trace=outcome.routing_trace,
        energy_wh=eco.get("energy_wh"),
        carbon_g=eco.get("carbon_g"),
        carbon_per_1k_tokens_g=eco.get("carbon_per_1k_tokens_g"),
        eco_accuracy=eco.get("accuracy", ""),
        methodology_version=eco.get("methodology_version", ""),
        eco_inputs=eco.get("inputs", {}),
    )
    if charge:
        wallet = Wallet.objects.select_for_update().get(account_id=hold.account_id)
        # The hold is the worst case, so the real cost fits it; if an upstream ignored the
        # bound, charge what the balance can pay without touching other holds, and keep the
        # rest visible as unbilled rather than driving the balance below zero.
        payable = wallet.balance_micros - (wallet.reserved_micros - release)
        gen.cost_micros = min(charge, max(0, payable))
        gen.unbilled_micros = charge - gen.cost_micros
    gen.save(force_insert=True)
    if gen.cost_micros:
        post_entry(
            account=hold.account_id,
            kind=LedgerKind.USAGE,
            amount_micros=-gen.cost_micros,
            release_micros=release,
            generation_id=gen.id,
            reference=gen.id,
        )
    elif release:
        Wallet.objects.filter(account_id=hold.account_id).update(
            reserved_micros=F("reserved_micros") - release
        )
    _move_key_spend(hold, release=release, spend=gen.cost_micros)
    _add_daily_usage(gen)
    return gen, balance_of(hold.account_id)


def release_orphaned_holds(*, older_than: timedelta = ORPHAN_AFTER) -> int:
    """Give back holds left by processes that died mid-request. Returns how many."""
    cutoff = timezone.now() - older_than
    released = 0
    for hold in Hold.objects.filter(created_at__lt=cutoff).order_by("id"):
        with transaction.atomic():
            # Deleting first claims the hold: a settlement racing us finds it gone and releases
            # nothing, so the counters are given back exactly once.
            if not Hold.objects.filter(pk=hold.pk).delete()[0]:
                continue
            Wallet.objects.filter(account_id=hold.account_id).update(
                reserved_micros=F("reserved_micros") - hold.amount_micros
            )
            ticket = HoldTicket(
                hold_id=hold.pk,
                account_id=hold.account_id,
                key_id=hold.key_id,
                amount_micros=hold.amount_micros,
                day=hold.day,
                month=hold.month,
            )
            _move_key_spend(ticket, release=hold.amount_micros, spend=0)
            released += 1
    return released


__all__ = [
    "HoldTicket",
    "InsufficientBalance",
    "Settlement",
    "SpendRefused",
    "release_orphaned_holds",
    "reserve_credits",
    "settle_generation",
]


def account_credits(account_id: int, *, now: datetime | None = None) -> dict:
    """Balance, credit on hold, and what was spent this calendar month (UTC), in credits."""
    now = now or timezone.now()
    _, month = period_starts(now)
    wallet = Wallet.objects.filter(account_id=account_id).first()
    spent = DailyUsage.objects.filter(account_id=account_id, day__gte=month).aggregate(
        s=Sum("cost_micros")
    )["s"]
    return {
        "object": "credits",
        "currency": "EUR",
        "credit_value_eur": "0.01",
        "balance": str(micros_to_credits(wallet.balance_micros if wallet else 0)),
        "reserved": str(micros_to_credits(wallet.reserved_micros if wallet else 0)),
        "spent_this_month": str(micros_to_credits(spent or 0)),
        "month_start": month.isoformat(),
    }


def key_spend_status(key: KeyContext, *, now: datetime | None = None) -> dict:
    """The calling key's limits, spend and what remains of each, in credits."""
    now = now or timezone.now()
    day, month = period_starts(now)
    rows = {
        r.period: r
        for r in KeySpend.objects.filter(key_id=key.key_id).filter(
            Q(period=SpendPeriod.DAY, period_start=day)
            | Q(period=SpendPeriod.MONTH, period_start=month)
        )
    }

    def period(name: str, limit: Decimal | None) -> dict:
        row = rows.get(name)
        spent = row.spent_micros if row else 0
        held = row.reserved_micros if row else 0
        remaining = None
        if limit is not None:
            remaining = str(micros_to_credits(max(0, credits_to_micros(limit) - spent - held)))
        return {
            "limit": str(limit) if limit is not None else None,
            "spent": str(micros_to_credits(spent)),
            "reserved": str(micros_to_credits(held)),
            "remaining": remaining,
            "resets_in_seconds": seconds_until_reset(name, now),
        }

    return {
        "object": "key",
        "id": key.key_id,
        "name": key.key_name,
        "models": list(key.models),
        "region": key.region or None,
        "prefer_low_carbon": key.prefer_low_carbon,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "daily": period(SpendPeriod.DAY, key.daily_credit_limit),
        "monthly": period(SpendPeriod.MONTH, key.monthly_credit_limit),
    }
