"""The request path's statements sent from the event loop (PostgreSQL): the same values as from
a worker thread, the money statements' commit setting kept to their own transaction, and a
settlement seen through when its caller is cancelled. asyncdb's own contract (errors, lost
connections, the connection limit, cancellation) is tested in tests/lib/test_asyncdb_contract.py."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from keys.auth import AuthError, aauthenticate, authenticate
from lowrouter import asyncdb
from tests.conftest import needs_postgres
from tests.factories import make_funded

pytestmark = [needs_postgres, pytest.mark.django_db(transaction=True)]


def on_loop(steps):
    async def run():
        try:
            return await steps()
        finally:
            await asyncdb.close_loop_connections()

    return asyncio.run(run())


def test_a_key_reads_the_same_from_the_loop_as_from_a_thread():
    f = make_funded(
        name="limited",
        daily_credit_limit=Decimal("1.5"),
        monthly_credit_limit=Decimal("20"),
        models=["demo/echo-small", "demo/echo-large"],
        region="eu",
        expires_at=timezone.now() + timedelta(days=3),
    )
    header = f"Bearer {f.token}"
    from_thread = authenticate(header)
    assert on_loop(lambda: aauthenticate(header)) == from_thread
    assert set(from_thread.models) == {"demo/echo-small", "demo/echo-large"}
    assert from_thread.daily_credit_limit == Decimal("1.5")

    f.key.enabled = False
    f.key.save()
    with pytest.raises(AuthError) as caught:
        on_loop(lambda: aauthenticate(header))
    assert caught.value.code == "key_disabled"


def test_reserve_and_settle_skip_the_flush_wait_without_leaking_it():
    """Both spending functions commit without waiting for the WAL flush (migrations billing
    0005 and 0008), each for its own transaction only: the connection's next statement, which
    may be anything, runs with the server's setting."""
    from billing.spending import Settlement, asettle_generation

    f = make_funded()

    async def steps():
        hold = await _reserve(f, 1_000)
        # every statement here goes to the same connection
        assert len(asyncdb.loop_connections_state().idle_pids) == 1
        after_reserve = await asyncdb.fetch_one_on_loop(_COMMIT_SETTING, [])
        outcome = Settlement(
            requested_model="demo/echo-small", status="ok", created_at=timezone.now()
        )
        await asettle_generation(hold=hold, outcome=outcome)
        assert len(asyncdb.loop_connections_state().idle_pids) == 1
        after_settle = await asyncdb.fetch_one_on_loop(_COMMIT_SETTING, [])
        return after_reserve, after_settle

    assert on_loop(steps) == (("on",), ("on",))
    with connection.cursor() as cur:
        for function in ("lowrouter_reserve", "lowrouter_settle"):
            cur.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [function])
            assert "set_config('synchronous_commit', 'off', true)" in cur.fetchone()[0]


_COMMIT_SETTING = "SELECT current_setting('synchronous_commit')"


async def _reserve(f, amount_micros: int):
    """A hold on the funded account's key, with no key limits, from the event loop."""
    from billing.spending import areserve_credits

    return await areserve_credits(
        account_id=f.user.pk,
        key_id=f.key.pk,
        key_name=f.key.name,
        daily_limit=None,
        monthly_limit=None,
        amount_micros=amount_micros,
    )


def test_a_settlement_whose_caller_is_cancelled_is_still_written():
    """A client that leaves while its request is being settled: the hold is released and the
    generation recorded and charged all the same."""
    from billing.models import Generation, Hold, LedgerEntry
    from billing.spending import Settlement, asettle_generation

    f = make_funded()

    async def steps():
        hold = await _reserve(f, 5_000)
        outcome = Settlement(
            generation_id="gen_cancelled_client",
            requested_model="demo/echo-small",
            status="ok",
            created_at=timezone.now(),
            cost_micros=1_234,
        )
        task = asyncio.create_task(asettle_generation(hold=hold, outcome=outcome))
        await asyncio.sleep(0)  # the statement is sent; its answer is owed
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    on_loop(steps)
    assert not Hold.objects.exists()
    assert Generation.objects.get(id="gen_cancelled_client").cost_micros == 1_234
    assert LedgerEntry.objects.get(generation_id="gen_cancelled_client").amount_micros == -1_234
