"""Reserve and settle scenarios, run against every implementation of the money core.

The same scenarios run through each ``MoneyCore`` the database can run: the statements
(``reserve_by_statements`` / ``settle_by_statements``) on SQLite and on PostgreSQL, and on
PostgreSQL also the ``lowrouter_reserve`` / ``lowrouter_settle`` functions, from a worker thread
(Django's connection) and from the event loop (``areserve_credits`` / ``asettle_generation`` on
the loop's own connections, which only see committed data, hence a transactional database).
Each CI pass therefore tests the statements, and the PostgreSQL pass holds both to one result.
"""

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.ids import new_generation_id
from billing.ledger import ledger_sum
from billing.models import DailyUsage, Generation, Hold, KeySpend, LedgerEntry, Wallet
from billing.money import credits_to_micros
from billing.spending import (
    MoneyCore,
    Settlement,
    SpendRefused,
    areserve_credits,
    asettle_generation,
    release_orphaned_holds,
    reserve_credits,
    settle_generation,
)
from lowrouter.asyncdb import close_loop_connections
from tests.conftest import ON_POSTGRES
from tests.factories import make_funded

pytestmark = pytest.mark.django_db(transaction=True)

CORE = MoneyCore.STATEMENTS
ON_LOOP = False


@pytest.fixture(
    autouse=True,
    params=[
        (MoneyCore.STATEMENTS, "worker thread"),
        (MoneyCore.SQL_FUNCTIONS, "worker thread"),
        (MoneyCore.SQL_FUNCTIONS, "event loop"),
    ],
    ids=["statements", "sql functions", "sql functions on the event loop"],
)
def money_core(request: pytest.FixtureRequest) -> None:
    global CORE, ON_LOOP
    CORE, thread = request.param
    ON_LOOP = thread == "event loop"
    if CORE == MoneyCore.SQL_FUNCTIONS and not ON_POSTGRES:
        pytest.skip("the SQL functions are PostgreSQL's only")


def on_loop(coro_fn, **kwargs):
    async def run():
        try:
            return await coro_fn(**kwargs)
        finally:
            await close_loop_connections()

    return asyncio.run(run())


def reserve(f, amount: int, **more: object) -> object:
    kwargs = {
        **more,
        "account_id": f.user.pk,
        "key_id": f.key.pk,
        "key_name": f.key.name,
        "daily_limit": f.key.daily_credit_limit,
        "monthly_limit": f.key.monthly_credit_limit,
        "amount_micros": amount,
    }
    if ON_LOOP:
        return on_loop(areserve_credits, **kwargs)
    return reserve_credits(**kwargs, core=CORE)


def settle(**kwargs) -> tuple[int, int]:
    if ON_LOOP:
        return on_loop(asettle_generation, **kwargs)
    return settle_generation(**kwargs, core=CORE)


def outcome(cost: int, **fields: object) -> Settlement:
    values = {
        "requested_model": "demo/echo-small",
        "resolved_model": "demo/echo-small",
        "status": "ok",
        "provider": "demo",
        "region": "local",
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "cached_prompt_tokens": 4,
        "latency_ms": 12,
        "cost_micros": cost,
        "prompt_price_eur": Decimal("1.250000"),
        "completion_price_eur": Decimal("2.000000"),
        "cached_prompt_price_eur": Decimal("0.125000"),
        "platform_fee_eur": Decimal("0.500000"),
        "routing_trace": {"attempts": [{"provider": "demo", "outcome": "ok"}], "mode": "pinned"},
        "created_at": timezone.now() - timedelta(seconds=1),
        "generation_id": new_generation_id(),
        "eco": {
            "energy_wh": 0.25,
            "carbon_g": 0.0625,
            "carbon_per_1k_tokens_g": 2.08,
            "accuracy": "gross",
            "methodology_version": "v0.4-2026-01",
            "inputs": {"active_params_b": 3, "grid_g_per_kwh": 250.0},
        },
    }
    return Settlement(**{**values, **fields})


def spend_rows(f) -> dict[str, tuple[int, int]]:
    return {
        s.period: (s.spent_micros, s.reserved_micros) for s in KeySpend.objects.filter(key=f.key)
    }


def assert_books_exact(f) -> None:
    wallet = Wallet.objects.get(account=f.user)
    assert wallet.balance_micros == ledger_sum(f.user) >= 0
    assert wallet.reserved_micros == 0
    assert not Hold.objects.filter(account=f.user).exists()
    assert all(reserved == 0 for _, reserved in spend_rows(f).values())


def test_a_settled_request_is_recorded_once_everywhere():
    f = make_funded(credits=Decimal("10"))
    start = credits_to_micros(Decimal("10"))
    hold = reserve(f, 2_000_000)
    assert hold.balance_micros == start
    assert Wallet.objects.get(account=f.user).reserved_micros == 2_000_000
    assert Hold.objects.get(pk=hold.hold_id).amount_micros == 2_000_000
    assert spend_rows(f) == {"day": (0, 2_000_000), "month": (0, 2_000_000)}

    first = outcome(750_000)
    assert settle(hold=hold, outcome=first) == (750_000, start - 750_000)

    gen = Generation.objects.get(pk=first.generation_id)
    assert (gen.cost_micros, gen.unbilled_micros) == (750_000, 0)
    assert (gen.prompt_tokens, gen.completion_tokens, gen.total_tokens) == (10, 20, 30)
    assert gen.cached_prompt_tokens == 4 and gen.latency_ms == 12 and gen.stream is False
    assert gen.prompt_price_eur == Decimal("1.25") and gen.platform_fee_eur == Decimal("0.5")
    assert gen.created_at == first.created_at and gen.completed_at >= gen.created_at
    assert gen.routing_trace == first.routing_trace
    assert gen.eco_inputs == {"active_params_b": 3, "grid_g_per_kwh": 250.0}
    assert (gen.energy_wh, gen.carbon_g, gen.eco_accuracy) == (0.25, 0.0625, "gross")
    assert gen.methodology_version == "v0.4-2026-01"
    assert (gen.account_id, gen.key_id, gen.provider, gen.region) == (
        f.user.pk,
        f.key.pk,
        "demo",
        "local",
    )
    entry = LedgerEntry.objects.get(generation=gen)
    assert (entry.kind, entry.amount_micros, entry.reference) == ("usage", -750_000, gen.id)
    assert spend_rows(f) == {"day": (750_000, 0), "month": (750_000, 0)}
    usage = DailyUsage.objects.get(account=f.user)
    assert (usage.day, usage.model, usage.requests) == (
        first.created_at.date(),
        "demo/echo-small",
        1,
    )
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cost_micros) == (10, 20, 750_000)

    second = outcome(250_000)
    assert settle(hold=reserve(f, 1_000_000), outcome=second) == (
        250_000,
        start - 1_000_000,
    )
    usage.refresh_from_db()
    assert (usage.requests, usage.cost_micros, usage.prompt_tokens) == (2, 1_000_000, 20)
    assert usage.energy_wh == pytest.approx(0.5)
    assert spend_rows(f) == {"day": (1_000_000, 0), "month": (1_000_000, 0)}
    assert_books_exact(f)


def test_a_cost_beyond_what_the_balance_can_pay_is_kept_as_unbilled():
    f = make_funded(credits=Decimal("1"))  # 1,000,000 micros
    other = reserve(f, 300_000)
    hold = reserve(f, 500_000)
    # The upstream ignored the bound: 2,000,000 is due, but 300,000 is promised to `other`.
    late = outcome(2_000_000)
    assert settle(hold=hold, outcome=late) == (700_000, 300_000)
    gen = Generation.objects.get(pk=late.generation_id)
    assert (gen.cost_micros, gen.unbilled_micros) == (700_000, 1_300_000)
    assert Wallet.objects.get(account=f.user).reserved_micros == 300_000
    assert settle(hold=other, outcome=outcome(300_000)) == (300_000, 0)
    assert_books_exact(f)


def test_a_cost_beyond_the_hold_is_charged_only_up_to_the_key_limits():
    f = make_funded(
        credits=Decimal("10"), daily_credit_limit=Decimal("1"), monthly_credit_limit=Decimal("1.5")
    )
    other = reserve(f, 200_000)
    hold = reserve(f, 100_000)
    # The upstream ignored the bound: 5,000,000 is due; the day (1,000,000) has 800,000 left
    # once `other` keeps what it was promised.
    late = outcome(5_000_000)
    assert settle(hold=hold, outcome=late) == (800_000, 10_000_000 - 800_000)
    gen = Generation.objects.get(pk=late.generation_id)
    assert (gen.cost_micros, gen.unbilled_micros) == (800_000, 4_200_000)
    assert LedgerEntry.objects.get(generation=gen).amount_micros == -800_000
    assert spend_rows(f) == {"day": (800_000, 200_000), "month": (800_000, 200_000)}
    assert DailyUsage.objects.get(account=f.user).cost_micros == 800_000
    settle(hold=other, outcome=outcome(200_000))
    assert spend_rows(f) == {"day": (1_000_000, 0), "month": (1_000_000, 0)}

    # A hold the reaper took back no longer reserves anything: the key's room alone decides,
    # here the month's on a new day (1,500,000 less the 1,000,000 spent).
    tomorrow = timezone.now() + timedelta(days=1)
    if tomorrow.month != timezone.now().month:
        tomorrow = timezone.now()
        KeySpend.objects.filter(key=f.key, period="day").update(spent_micros=0)
    reaped = reserve(f, 100_000, now=tomorrow)
    Hold.objects.filter(pk=reaped.hold_id).update(created_at=timezone.now() - timedelta(hours=1))
    assert release_orphaned_holds() == 1
    assert settle(hold=reaped, outcome=outcome(2_500_000))[0] == 500_000
    month = KeySpend.objects.get(key=f.key, period="month")
    assert month.spent_micros == 1_500_000 == credits_to_micros(Decimal("1.5"))
    assert_books_exact(f)


def test_nothing_is_billed_when_nothing_is_left_to_pay():
    f = make_funded(credits=Decimal("1"))
    hold = reserve(f, 1_000_000)
    LedgerEntry.objects.create(account=f.user, kind="adjustment", amount_micros=-1_000_000)
    Wallet.objects.filter(account=f.user).update(balance_micros=0)
    failed = outcome(400_000)
    assert settle(hold=hold, outcome=failed) == (0, 0)
    gen = Generation.objects.get(pk=failed.generation_id)
    assert (gen.cost_micros, gen.unbilled_micros) == (0, 400_000)
    assert not LedgerEntry.objects.filter(generation=gen).exists()
    assert_books_exact(f)


def test_a_free_outcome_writes_a_record_and_no_ledger_entry():
    f = make_funded(credits=Decimal("1"))
    failed = outcome(0, status="upstream_error", error_code="upstream_error", provider="")
    assert settle(hold=reserve(f, 600_000), outcome=failed) == (0, 1_000_000)
    gen = Generation.objects.get(pk=failed.generation_id)
    assert (gen.status, gen.error_code, gen.cost_micros) == ("upstream_error", "upstream_error", 0)
    assert not LedgerEntry.objects.filter(generation=gen).exists()
    assert DailyUsage.objects.get(account=f.user).requests == 1
    assert_books_exact(f)


def test_a_hold_the_reaper_gave_back_is_not_given_back_twice():
    f = make_funded(credits=Decimal("1"))
    hold = reserve(f, 500_000)
    Hold.objects.filter(pk=hold.hold_id).update(created_at=timezone.now() - timedelta(hours=1))
    assert release_orphaned_holds() == 1
    assert settle(hold=hold, outcome=outcome(100_000)) == (100_000, 900_000)
    assert spend_rows(f) == {"day": (100_000, 0), "month": (100_000, 0)}
    assert_books_exact(f)


def test_refusals_say_which_limit_and_hold_nothing():
    f = make_funded(
        credits=Decimal("1"),
        daily_credit_limit=Decimal("0.5"),
        monthly_credit_limit=Decimal("0.8"),
    )

    def refused(amount: int) -> SpendRefused:
        wallet_before = Wallet.objects.get(account=f.user).reserved_micros
        spend_before = spend_rows(f)
        holds_before = Hold.objects.count()
        with pytest.raises(SpendRefused) as caught:
            reserve(f, amount)
        assert Wallet.objects.get(account=f.user).reserved_micros == wallet_before
        assert Hold.objects.count() == holds_before
        if spend_before:
            assert spend_rows(f) == spend_before
        return caught.value

    balance = refused(1_500_000)
    assert (balance.status, balance.code, balance.limit) == (402, "insufficient_credits", "balance")
    assert balance.remaining_micros == 1_000_000
    day = refused(600_000)
    assert (day.status, day.code, day.remaining_micros) == (
        429,
        "key_daily_limit_exceeded",
        500_000,
    )
    assert day.limit == "daily_credit_limit" and day.retry_after > 0
    held = reserve(f, 400_000)
    assert refused(200_000).remaining_micros == 100_000
    settle(hold=held, outcome=outcome(400_000))

    # Tomorrow's day has room again; the month (0.8) is what refuses 0.5 more.
    Wallet.objects.filter(account=f.user).update(balance_micros=credits_to_micros(Decimal("10")))
    LedgerEntry.objects.create(
        account=f.user, kind="adjustment", amount_micros=credits_to_micros(Decimal("10")) - 600_000
    )
    KeySpend.objects.filter(key=f.key, period="day").update(spent_micros=0)
    month = refused(500_000)
    assert (month.status, month.code, month.limit) == (
        429,
        "key_monthly_limit_exceeded",
        "monthly_credit_limit",
    )
    assert month.remaining_micros == 400_000
    assert_books_exact(f)


def test_a_new_day_in_a_month_already_counted_starts_from_zero():
    """The day's spend row is created on the key's first request of that day; the month's,
    already there, keeps counting (the reservation's one-row path), limits included."""
    f = make_funded(
        credits=Decimal("10"), daily_credit_limit=Decimal("0.5"), monthly_credit_limit=Decimal("1")
    )
    first_day = datetime(2026, 11, 10, 12, tzinfo=UTC)
    settle(hold=reserve(f, 400_000, now=first_day), outcome=outcome(400_000))
    next_day = first_day + timedelta(days=1)
    held = reserve(f, 450_000, now=next_day)
    rows = {
        (s.period, s.period_start): (s.spent_micros, s.reserved_micros)
        for s in KeySpend.objects.filter(key=f.key)
    }
    assert rows == {
        ("day", first_day.date()): (400_000, 0),
        ("day", next_day.date()): (0, 450_000),
        ("month", date(2026, 11, 1)): (400_000, 450_000),
    }
    with pytest.raises(SpendRefused) as caught:
        reserve(f, 200_000, now=next_day)  # the new day has 50,000 left
    assert caught.value.limit == "daily_credit_limit"
    assert caught.value.remaining_micros == 50_000
    settle(hold=held, outcome=outcome(450_000))
    third_day = next_day + timedelta(days=1)
    with pytest.raises(SpendRefused) as caught:
        reserve(f, 200_000, now=third_day)  # the new day has room; the month has 150,000
    assert caught.value.limit == "monthly_credit_limit"
    assert caught.value.remaining_micros == 150_000
    assert (
        not KeySpend.objects.filter(key=f.key, period_start=third_day.date())
        .exclude(reserved_micros=0, spent_micros=0)
        .exists()
    )
    assert_books_exact(f)


def test_the_generation_row_names_every_column_of_the_model():
    from billing.spending import HoldTicket, _generation_row

    hold = HoldTicket(
        hold_id=1, account_id=1, key_id=1, amount_micros=1, day=None, month=None, balance_micros=0
    )
    columns = {f.attname for f in Generation._meta.concrete_fields}
    assert set(_generation_row(hold, outcome(0))) == columns
