"""Reserve, then settle: how a request spends credit without ever overspending.

Before the upstream call, ``reserve_credits`` holds the request's worst-case cost against the
account's balance (a conditional UPDATE that only matches when the hold fits) and the key's daily
and monthly spend (rows locked, then checked). Concurrent requests therefore queue on row locks
and each sees the others' holds: N parallel requests can never reserve more than the balance or a
limit allows.

``settle_generation`` then writes, in one transaction, the generation record, the ledger debit at
the real usage, the key's spend counters and the daily aggregate, and releases the hold. Every
outcome settles (success, upstream error, disconnect, timeout); a hold orphaned by a dead process
is released by ``release_orphaned_holds`` (a periodic task).

Each has two implementations of the same steps (``MoneyCore``): server-side functions, one
round trip each (``billing/sql/``, the default on PostgreSQL), and statements sent from here
(``reserve_by_statements``, ``settle_by_statements``: the default on SQLite, where a statement
costs no round trip; they run on PostgreSQL too). tests/billing/test_money_core_scenarios.py
holds both to the same scenarios.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from billing.ids import new_generation_id
from billing.ledger import InsufficientBalance, apply_entry
from billing.models import (
    DailyUsage,
    Generation,
    Hold,
    KeySpend,
    LedgerKind,
    SpendPeriod,
    UsageSource,
    Wallet,
)
from billing.money import credits_to_micros, format_credits, micros_to_credits
from keys.auth import KeyContext
from lowrouter import jsonio
from lowrouter.asyncdb import fetch_one_on_loop
from lowrouter.sql import execute, fetch_one, insert_row, table

# A hold neither placed nor renewed for this long belongs to a process that died: a request
# still in flight renews its hold well within it (``renew_hold``, every
# LOWROUTER_HOLD_RENEW_SECONDS while a stream is relayed).
ORPHAN_AFTER = timedelta(minutes=30)


class MoneyCore(StrEnum):
    """Which implementation of reserve and settle runs (the steps and results are the same)."""

    SQL_FUNCTIONS = "sql_functions"  # lowrouter_reserve / lowrouter_settle, PostgreSQL only
    STATEMENTS = "statements"  # reserve_by_statements / settle_by_statements, either database


def default_money_core() -> MoneyCore:
    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        return MoneyCore.SQL_FUNCTIONS
    return MoneyCore.STATEMENTS


class Refusal(StrEnum):
    """Why a reservation held nothing: the values ``lowrouter_reserve`` answers with (and the
    statement version raises)."""

    BALANCE = "balance"  # the balance, less other holds, cannot cover the worst case
    DAY = "day"  # the key's daily credit limit
    MONTH = "month"  # the key's monthly credit limit
    KEY = "key"  # PostgreSQL: the key is no longer usable (revoked, disabled, expired)
    STALE = "stale"  # PostgreSQL: the key changed since the request read it


class KeyChanged(Exception):
    """PostgreSQL only: the key the request was routed with is no longer usable (``key``) or
    no longer as it was read (``stale``); nothing was held (``billing/sql/lowrouter_reserve.sql``).
    """

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


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


# A key without a limit is checked against this bound instead, so one statement serves both.
_NO_LIMIT = 2**62


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
    # The key's day and month limits the hold was checked against (micros; _NO_LIMIT when
    # none): settlement never charges the key past them, whatever the upstream produced.
    limits: tuple[int, int] = (_NO_LIMIT, _NO_LIMIT)


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
    usage_source: str = UsageSource.REPORTED
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


def _ensure_spend_rows(key_id: int, day: date, month: date) -> None:
    """Both period rows exist before they are reserved against (one statement, idempotent)."""
    ops = connection.ops
    execute(
        f"INSERT INTO {table(KeySpend)} (key_id, period, period_start, spent_micros,"
        " reserved_micros) VALUES (%s, %s, %s, 0, 0), (%s, %s, %s, 0, 0)"
        " ON CONFLICT (key_id, period, period_start) DO NOTHING",
        [
            key_id,
            SpendPeriod.DAY.value,
            ops.adapt_datefield_value(day),
            key_id,
            SpendPeriod.MONTH.value,
            ops.adapt_datefield_value(month),
        ],
    )


def _limit_micros(limit: Decimal | None) -> int:
    return min(credits_to_micros(limit), _NO_LIMIT) if limit is not None else _NO_LIMIT


def _spend_refused(
    refused: str, remaining: int, *, key_name: str, limits: tuple[int, int], now: datetime
) -> SpendRefused:
    """The error for a hold that did not fit the balance or one of the key's limits."""
    if refused == Refusal.BALANCE:
        return SpendRefused(
            status=402,
            code="insufficient_credits",
            limit="balance",
            remaining_micros=remaining,
            message=f"Insufficient credits: {format_credits(remaining)} credits available",
        )
    label, limit = ("daily", limits[0]) if refused == Refusal.DAY else ("monthly", limits[1])
    error = SpendRefused(
        status=429,
        code=f"key_{label}_limit_exceeded",
        limit=f"{label}_credit_limit",
        remaining_micros=remaining,
        message=(
            f"API key '{key_name}' has reached its {label} credit limit "
            f"({format_credits(limit)}): {format_credits(remaining)} credits left"
        ),
    )
    error.retry_after = seconds_until_reset(
        SpendPeriod.DAY if refused == Refusal.DAY else SpendPeriod.MONTH, now
    )
    return error


_RESERVE_CALL = (
    "SELECT refused, hold_id, balance, remaining"
    " FROM lowrouter_reserve(%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


@dataclass(frozen=True)
class _Reservation:
    """One hold asked for: the arguments of ``lowrouter_reserve`` and what to make of its row."""

    account_id: int
    key_id: int
    key_name: str
    amount_micros: int
    day: date
    month: date
    limits: tuple[int, int]
    now: datetime
    key_fingerprint: str | None

    def call_args(self) -> list:
        return [
            self.account_id,
            self.key_id,
            self.amount_micros,
            self.day,
            self.month,
            *self.limits,
            self.now,
            self.key_fingerprint,
        ]

    def ticket(
        self, refused: str | None, hold_id: int | None, balance: int | None, remaining: int
    ) -> HoldTicket:
        if refused in (Refusal.KEY, Refusal.STALE):
            raise KeyChanged(refused)
        if refused:
            raise _spend_refused(
                refused, remaining, key_name=self.key_name, limits=self.limits, now=self.now
            )
        # Not refused: the reservation made a hold and read the balance.
        assert hold_id is not None and balance is not None
        return HoldTicket(
            hold_id=hold_id,
            account_id=self.account_id,
            key_id=self.key_id,
            amount_micros=self.amount_micros,
            day=self.day,
            month=self.month,
            balance_micros=balance,
            limits=self.limits,
        )


def _reservation(
    account_id: int,
    key_id: int,
    key_name: str,
    daily_limit: Decimal | None,
    monthly_limit: Decimal | None,
    amount_micros: int,
    now: datetime | None,
    key_fingerprint: str | None,
) -> _Reservation:
    now = now or timezone.now()
    day, month = period_starts(now)
    limits = (_limit_micros(daily_limit), _limit_micros(monthly_limit))
    return _Reservation(
        account_id, key_id, key_name, amount_micros, day, month, limits, now, key_fingerprint
    )


def reserve_credits(
    *,
    account_id: int,
    key_id: int,
    key_name: str,
    daily_limit: Decimal | None,
    monthly_limit: Decimal | None,
    amount_micros: int,
    now: datetime | None = None,
    key_fingerprint: str | None = None,
    core: MoneyCore | None = None,
) -> HoldTicket:
    """Hold ``amount_micros`` against the balance and the key's limits, or raise SpendRefused.

    Three steps, in one transaction: the wallet (conditional UPDATE), both key periods (locked,
    checked, raised), the hold row. A refusal leaves nothing held. As the ``lowrouter_reserve``
    function (``billing/sql/``, PostgreSQL's default) it is one round trip, which first checks
    that the key is still usable and, given ``key_fingerprint``, unchanged since it was read
    (else KeyChanged). As statements the caller read the key in the same unit of work.
    """
    r = _reservation(
        account_id,
        key_id,
        key_name,
        daily_limit,
        monthly_limit,
        amount_micros,
        now,
        key_fingerprint,
    )
    if (core or default_money_core()) == MoneyCore.SQL_FUNCTIONS:
        return r.ticket(*reserve_by_function(r))
    return r.ticket(*reserve_by_statements(r))


async def areserve_credits(
    *,
    account_id: int,
    key_id: int,
    key_name: str,
    daily_limit: Decimal | None,
    monthly_limit: Decimal | None,
    amount_micros: int,
    now: datetime | None = None,
    key_fingerprint: str | None = None,
) -> HoldTicket:
    """``reserve_credits`` from the event loop, PostgreSQL only (``statements_on_loop``)."""
    r = _reservation(
        account_id,
        key_id,
        key_name,
        daily_limit,
        monthly_limit,
        amount_micros,
        now,
        key_fingerprint,
    )
    row = await fetch_one_on_loop(_RESERVE_CALL, r.call_args())
    assert row is not None  # the function always answers one row
    return r.ticket(*row)


def reserve_by_function(r: _Reservation) -> tuple[str | None, int | None, int | None, int]:
    """``lowrouter_reserve``: (refused, hold_id, balance, remaining) in one round trip."""
    row = fetch_one(_RESERVE_CALL, r.call_args())
    assert row is not None  # the function always answers one row
    refused, hold_id, balance, remaining = row
    return refused, hold_id, balance, remaining


class _Refused(Exception):
    """Rolls the reservation's transaction back; carries why and what is left."""

    def __init__(self, refused: str, remaining: int) -> None:
        self.refused, self.remaining = refused, remaining


def reserve_by_statements(r: _Reservation) -> tuple[str | None, int | None, int | None, int]:
    """``lowrouter_reserve`` as statements (steps 1-3: the key is not checked again). Returns
    (refused, hold_id, balance, remaining) like the function; a refusal rolls back."""
    account_id, key_id, amount = r.account_id, r.key_id, r.amount_micros
    day, month, limits, now = r.day, r.month, r.limits, r.now
    try:
        with transaction.atomic():
            row = fetch_one(
                f"UPDATE {table(Wallet)} SET reserved_micros = reserved_micros + %s"
                " WHERE account_id = %s AND balance_micros - reserved_micros >= %s"
                " RETURNING balance_micros",
                [amount, account_id, amount],
            )
            if row is None:
                w = Wallet.objects.filter(account_id=account_id).values(
                    "balance_micros", "reserved_micros"
                ).first() or {"balance_micros": 0, "reserved_micros": 0}
                raise _Refused(Refusal.BALANCE, max(0, w["balance_micros"] - w["reserved_micros"]))
            _ensure_spend_rows(key_id, day, month)
            periods = Q(period=SpendPeriod.DAY, period_start=day) | Q(
                period=SpendPeriod.MONTH, period_start=month
            )
            spend = KeySpend.objects.filter(periods, key_id=key_id)
            # Locked until the commit, so that concurrent requests of one key queue here and
            # each sees the others' holds (SQLite has one writer at a time anyway).
            locked = (
                spend.select_for_update() if connection.features.has_select_for_update else spend
            )
            used = {
                p: spent + held
                for p, spent, held in locked.values_list(
                    "period", "spent_micros", "reserved_micros"
                )
            }
            for period, limit in zip((SpendPeriod.DAY, SpendPeriod.MONTH), limits, strict=True):
                if used[period] + amount > limit:
                    raise _Refused(Refusal(period.value), max(0, limit - used[period]))
            spend.update(reserved_micros=F("reserved_micros") + amount)
            hold_id = insert_row(
                Hold,
                {
                    "account_id": account_id,
                    "key_id": key_id,
                    "amount_micros": amount,
                    "day": day,
                    "month": month,
                    "created_at": now,
                },
            )
            return None, hold_id, row[0], 0
    except _Refused as refusal:
        return refusal.refused, None, None, refusal.remaining


def balance_of(account_id: int) -> int:
    return (
        Wallet.objects.filter(account_id=account_id)
        .values_list("balance_micros", flat=True)
        .first()
        or 0
    )


async def abalance_of(account_id: int) -> int:
    """``balance_of`` from the event loop, PostgreSQL only (``statements_on_loop``)."""
    row = await fetch_one_on_loop(
        f"SELECT balance_micros FROM {table(Wallet)} WHERE account_id = %s", [account_id]
    )
    return row[0] if row else 0


def _move_key_spend(hold: HoldTicket, *, release: int, spend: int) -> None:
    """Both periods of the hold, in one statement: the hold leaves, the spend stays."""
    ops = connection.ops
    execute(
        f"UPDATE {table(KeySpend)} SET reserved_micros = reserved_micros - %s,"
        " spent_micros = spent_micros + %s WHERE key_id = %s"
        " AND ((period = %s AND period_start = %s) OR (period = %s AND period_start = %s))",
        [
            release,
            spend,
            hold.key_id,
            SpendPeriod.DAY.value,
            ops.adapt_datefield_value(hold.day),
            SpendPeriod.MONTH.value,
            ops.adapt_datefield_value(hold.month),
        ],
    )


def _add_daily_usage(gen: dict) -> None:
    """One upsert (PostgreSQL and SQLite share the ON CONFLICT syntax)."""
    execute(
        f"INSERT INTO {table(DailyUsage)} (account_id, day, model, key_id, provider, region,"
        " requests, prompt_tokens, completion_tokens, cost_micros, energy_wh, carbon_g)"
        " VALUES (%s, %s, %s, %s, %s, %s, 1, %s, %s, %s, %s, %s)"
        " ON CONFLICT (account_id, day, model, key_id, provider, region) DO UPDATE SET"
        " requests = {t}.requests + 1,"
        " prompt_tokens = {t}.prompt_tokens + excluded.prompt_tokens,"
        " completion_tokens = {t}.completion_tokens + excluded.completion_tokens,"
        " cost_micros = {t}.cost_micros + excluded.cost_micros,"
        " energy_wh = {t}.energy_wh + excluded.energy_wh,"
        " carbon_g = {t}.carbon_g + excluded.carbon_g".replace("{t}", table(DailyUsage)),
        [
            gen["account_id"],
            connection.ops.adapt_datefield_value(gen["created_at"].date()),
            gen["resolved_model"] or gen["requested_model"],
            gen["key_id"],
            gen["provider"],
            gen["region"],
            gen["prompt_tokens"],
            gen["completion_tokens"],
            gen["cost_micros"],
            gen["energy_wh"] or 0.0,
            gen["carbon_g"] or 0.0,
        ],
    )


_SETTLE_CALL = (
    "SELECT cost, balance FROM lowrouter_settle(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
)


def _json_value(value: object) -> object:
    """Prices are Decimals: sent as strings, read by PostgreSQL as exact numerics. (orjson
    writes datetimes itself, in RFC 3339.)"""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def settle_generation(
    *, hold: HoldTicket, outcome: Settlement, core: MoneyCore | None = None
) -> tuple[int, int]:
    """Record the generation, debit what it really cost, and release the hold, atomically.

    Six steps: the hold, the wallet and its ledger entry, the generation, the key's spend, the
    daily aggregate. As the ``lowrouter_settle`` function (``billing/sql/lowrouter_settle.sql``,
    PostgreSQL's default) they are one round trip. Returns the micros charged and the balance
    after it.

    The charge is capped so that the key's day and month spend stay within the limits the hold
    was checked against and the wallet never pays credit other holds were promised (so never
    goes below zero); what the cap leaves out is recorded as the generation's
    ``unbilled_micros``. Within a hold still held, the cap cannot bite: the reservation checked
    that the hold fits.
    """
    gen = _generation_row(hold, outcome)
    charge = max(0, outcome.cost_micros)
    if (core or default_money_core()) == MoneyCore.SQL_FUNCTIONS:
        return settle_by_function(hold, gen, charge)
    return settle_by_statements(hold, gen, charge)


def settle_by_function(hold: HoldTicket, gen: dict, charge: int) -> tuple[int, int]:
    """``lowrouter_settle``: (cost, balance) in one round trip."""
    row = fetch_one(_SETTLE_CALL, _settle_args(hold, gen, charge))
    assert row is not None  # the function always answers one row
    cost, balance = row
    return cost, balance


async def asettle_generation(*, hold: HoldTicket, outcome: Settlement) -> tuple[int, int]:
    """``settle_generation`` from the event loop, PostgreSQL only (``statements_on_loop``).
    Once called it runs to its end: a cancellation of the caller (a client gone) is raised only
    after the settlement is written, so no request is left with its hold and no record."""
    gen = _generation_row(hold, outcome)
    charge = max(0, outcome.cost_micros)
    row = await fetch_one_on_loop(
        _SETTLE_CALL, _settle_args(hold, gen, charge), finish_if_cancelled=True
    )
    assert row is not None  # the function always answers one row
    cost, balance = row
    return cost, balance


def _settle_args(hold: HoldTicket, gen: dict, charge: int) -> list:
    return [
        hold.hold_id,
        hold.account_id,
        hold.key_id,
        hold.amount_micros,
        hold.day,
        hold.month,
        *hold.limits,
        charge,
        jsonio.dumps(gen, default=_json_value).decode(),
    ]


@transaction.atomic
def settle_by_statements(hold: HoldTicket, gen: dict, charge: int) -> tuple[int, int]:
    """``lowrouter_settle`` as statements: (cost, balance) like the function."""
    # If the orphan reaper already released this hold, its counters were given back already.
    released = execute(f"DELETE FROM {table(Hold)} WHERE id = %s", [hold.hold_id])
    release = hold.amount_micros if released else 0
    cost = charge
    if cost > release:
        # Beyond the hold (an upstream past its bound, or a hold the reaper took back): only
        # what the key's limits still leave, after every other open hold on the key.
        cost = min(cost, _key_room(hold, release))
    entry = None
    if cost:
        entry = _debit(gen, cost, release)
        if entry is None:
            # The wallet cannot pay it all without touching other holds (an operator's debit, a
            # refund, or the same overrun): charge what it can pay, never below zero.
            payable = _payable(hold.account_id, release)
            entry = _debit(gen, min(cost, payable), release) if payable > 0 else None
        cost = -entry.amount_micros if entry else 0
    gen["cost_micros"] = cost
    gen["unbilled_micros"] = charge - cost
    if entry is not None:
        balance = entry.balance_after
    else:
        row = fetch_one(
            f"UPDATE {table(Wallet)} SET reserved_micros = reserved_micros - %s"
            " WHERE account_id = %s RETURNING balance_micros",
            [release, hold.account_id],
        )
        balance = row[0] if row else 0
    insert_row(Generation, gen)
    _move_key_spend(hold, release=release, spend=cost)
    _add_daily_usage(gen)
    return cost, balance


def _key_room(hold: HoldTicket, release: int) -> int:
    """What the key may still be charged in the hold's day and month: each limit less what is
    spent and what other open holds reserved (this hold's ``release`` is leaving)."""
    periods = Q(period=SpendPeriod.DAY, period_start=hold.day) | Q(
        period=SpendPeriod.MONTH, period_start=hold.month
    )
    used = dict(
        KeySpend.objects.filter(periods, key_id=hold.key_id)
        .annotate(used=F("spent_micros") + F("reserved_micros"))
        .values_list("period", "used")
    )
    day_limit, month_limit = hold.limits
    room = min(
        day_limit - (used.get(SpendPeriod.DAY, 0) - release),
        month_limit - (used.get(SpendPeriod.MONTH, 0) - release),
    )
    return max(0, room)


def _debit(gen: dict, amount: int, release: int):
    return apply_entry(
        account_id=gen["account_id"],
        kind=LedgerKind.USAGE,
        amount_micros=-amount,
        release_micros=release,
        generation_id=gen["id"],
        reference=gen["id"],
    )


def _payable(account_id: int, release: int) -> int:
    wallets = Wallet.objects.filter(account_id=account_id)
    if connection.features.has_select_for_update:
        wallets = wallets.select_for_update()
    w = wallets.values("balance_micros", "reserved_micros").first()
    return max(0, w["balance_micros"] - (w["reserved_micros"] - release)) if w else 0


def _generation_row(hold: HoldTicket, outcome: Settlement) -> dict:
    """The generation record's columns, by attribute name (a plain dict: building a model
    instance costs more than the rest of settlement on the request path)."""
    eco = outcome.eco
    now = datetime.now(UTC)
    return dict(
        id=outcome.generation_id or new_generation_id(),
        account_id=hold.account_id,
        key_id=hold.key_id,
        created_at=outcome.created_at or now,
        completed_at=now,
        requested_model=outcome.requested_model,
        resolved_model=outcome.resolved_model,
        provider=outcome.provider,
        region=outcome.region,
        stream=outcome.stream,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        cached_prompt_tokens=outcome.cached_prompt_tokens,
        total_tokens=outcome.prompt_tokens + outcome.completion_tokens,
        # Always sent: PostgreSQL's settle function builds the row from this JSON alone.
        usage_source=str(outcome.usage_source),
        latency_ms=outcome.latency_ms,
        prompt_price_eur=outcome.prompt_price_eur,
        completion_price_eur=outcome.completion_price_eur,
        cached_prompt_price_eur=outcome.cached_prompt_price_eur,
        platform_fee_eur=outcome.platform_fee_eur,
        cost_micros=0,
        unbilled_micros=0,
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


_RENEW = f"UPDATE {table(Hold)} SET renewed_at = %s WHERE id = %s RETURNING id"


def renew_hold(hold_id: int, *, now: datetime | None = None) -> bool:
    """Mark a hold as still in use, so the orphan reaper leaves it. False if it is gone."""
    when = connection.ops.adapt_datetimefield_value(now or timezone.now())
    return fetch_one(_RENEW, [when, hold_id]) is not None


async def arenew_hold(hold_id: int, *, now: datetime | None = None) -> bool:
    """``renew_hold`` from the event loop, PostgreSQL only (``statements_on_loop``)."""
    return await fetch_one_on_loop(_RENEW, [now or timezone.now(), hold_id]) is not None


def release_orphaned_holds(*, older_than: timedelta = ORPHAN_AFTER) -> int:
    """Give back holds left by processes that died mid-request: neither placed nor renewed
    within ``older_than``. Returns how many."""
    cutoff = timezone.now() - older_than
    released = 0
    for hold in Hold.objects.orphaned(created_before=cutoff).order_by("id"):
        with transaction.atomic():
            # Deleting first claims the hold: a settlement racing us finds it gone and releases
            # nothing, so the counters are given back exactly once. The delete checks the
            # window again: a stream that renewed its hold since we listed it keeps it (on
            # PostgreSQL a renewal committed first makes the row no longer match).
            if not Hold.objects.orphaned(created_before=cutoff).filter(pk=hold.pk).delete()[0]:
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
    "MoneyCore",
    "Settlement",
    "SpendRefused",
    "release_orphaned_holds",
    "renew_hold",
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
