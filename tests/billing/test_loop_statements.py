"""The request path's statements sent from the event loop (PostgreSQL): the same values as from
a worker thread, errors raised as psycopg's without losing the connection, and a connection the
server ended while idle replaced before use."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import psycopg
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


def test_a_failed_statement_raises_and_the_connection_serves_the_next():
    async def steps():
        with pytest.raises(psycopg.errors.DivisionByZero):
            await asyncdb.fetch_one_on_loop("SELECT 1 / %s", [0])
        row = await asyncdb.fetch_one_on_loop("SELECT %s::int + 1, pg_backend_pid()", [41])
        again = await asyncdb.fetch_one_on_loop("SELECT %s::int + 1, pg_backend_pid()", [1])
        return row, again, len(asyncdb.loop_connections_state().idle_pids)

    (answer, pid), (_, pid_again), idle = on_loop(steps)
    assert answer == 42 and pid == pid_again and idle == 1


def test_a_connection_the_server_ended_while_idle_is_replaced():
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)

    async def steps():
        _, first = await asyncdb.fetch_one_on_loop("SELECT 1, pg_backend_pid()", [])
        with psycopg.connect(**params, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [first])
        await asyncio.sleep(0.2)
        _, second = await asyncdb.fetch_one_on_loop("SELECT 1, pg_backend_pid()", [])
        return first, second

    first, second = on_loop(steps)
    assert first != second


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


def test_statements_beyond_the_connection_limit_wait_their_turn(settings):
    settings.LOWROUTER_LOOP_DB_CONNECTIONS = 2

    async def steps():
        sql = "SELECT pg_backend_pid(), pg_sleep(0.02)::text"
        tasks = [asyncio.create_task(asyncdb.fetch_one_on_loop(sql, [])) for _ in range(8)]
        await asyncio.sleep(0.005)
        tasks[5].cancel()  # a waiter that leaves must not take a slot with it
        done = await asyncio.gather(*tasks, return_exceptions=True)
        after = await asyncdb.fetch_one_on_loop("SELECT 1", [])
        state = asyncdb.loop_connections_state()
        return done, after, state.in_use, len(state.idle_pids)

    done, after, in_use, idle = on_loop(steps)
    assert isinstance(done[5], asyncio.CancelledError)
    pids = {row[0] for i, row in enumerate(done) if i != 5}
    assert len(pids) <= 2
    assert after == (1,) and in_use == 0 and idle <= 2


def _counter() -> str:
    with connection.cursor() as cur:
        cur.execute("DROP SEQUENCE IF EXISTS test_statements_run")
        cur.execute("CREATE SEQUENCE test_statements_run")
    return "SELECT pg_backend_pid(), pg_sleep(%s)::text, nextval('test_statements_run')"


def _statements_run() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT last_value, is_called FROM test_statements_run")
        value, called = cur.fetchone()
    return value if called else 0


def test_a_statement_asked_to_finish_is_seen_through_before_the_cancellation(settings):
    """``finish_if_cancelled``: a cancellation while connecting, while queued for a connection
    or while the answer is owed does not stop the statement; the caller gets the
    CancelledError once it has run, and the connection is kept for the next statement."""
    settings.LOWROUTER_LOOP_DB_CONNECTIONS = 1
    sql = _counter()

    async def cancelled_after(delay: float, statement) -> tuple[float, bool]:
        task = asyncio.create_task(statement)
        await asyncio.sleep(delay)
        started = asyncio.get_running_loop().time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return asyncio.get_running_loop().time() - started, task.cancelled()

    async def steps():
        # Cancelled while the loop's first connection is being opened.
        await cancelled_after(0, asyncdb.fetch_one_on_loop(sql, [0], finish_if_cancelled=True))
        (pid,) = asyncdb.loop_connections_state().idle_pids
        # Cancelled while the answer is owed: raised only once the statement has run.
        waited, _ = await cancelled_after(
            0.05, asyncdb.fetch_one_on_loop(sql, [0.3], finish_if_cancelled=True)
        )
        # Cancelled while queued behind another statement for the only connection.
        busy = asyncio.create_task(asyncdb.fetch_one_on_loop(sql, [0.2]))
        await asyncio.sleep(0.02)
        _, was_cancelled = await cancelled_after(
            0.02, asyncdb.fetch_one_on_loop(sql, [0], finish_if_cancelled=True)
        )
        await busy
        return pid, waited, was_cancelled, asyncdb.loop_connections_state().idle_pids

    pid, waited, was_cancelled, idle = on_loop(steps)
    assert _statements_run() == 4
    assert waited >= 0.2 and was_cancelled
    assert idle == [pid]  # the same connection served all four


def test_a_statement_not_asked_to_finish_is_abandoned_with_its_connection():
    sql = _counter()

    async def steps():
        await asyncdb.fetch_one_on_loop(sql, [0])
        task = asyncio.create_task(asyncdb.fetch_one_on_loop("SELECT pg_sleep(5)", []))
        await asyncio.sleep(0.05)
        started = asyncio.get_running_loop().time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        elapsed = asyncio.get_running_loop().time() - started
        return elapsed, asyncdb.loop_connections_state().idle_pids

    waited, idle = on_loop(steps)
    assert waited < 1 and idle == []


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
