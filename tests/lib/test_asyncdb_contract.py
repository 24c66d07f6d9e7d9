"""lowrouter.asyncdb's documented contract, against the real database.

On either database: ``run_db`` (a worker thread, its errors, reconnecting after them),
``statements_on_loop`` and ``refresh_in_background``. On PostgreSQL only (the loop path has no
SQLite driver): ``fetch_one_on_loop`` with its connection limit, ``finish_if_cancelled``, a
server that ended a connection or cannot be reached, and ``close_loop_connections``.
"""

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from django.db import IntegrityError, OperationalError, connection, connections

from accounts.models import User
from lowrouter import asyncdb
from lowrouter.asyncdb import DatabaseUnavailable
from tests.conftest import ON_POSTGRES, free_port, needs_postgres

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker_sessions_ended"),
]


def on_loop(steps: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``steps`` on a fresh event loop, closing that loop's connections at the end."""

    async def run() -> Any:
        try:
            return await steps()
        finally:
            await asyncdb.close_loop_connections()

    return asyncio.run(run())


def _backend_pid() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def _session_ended(cur: Any, pid: int) -> bool:
    """Whether the server has ended session ``pid``, waiting up to 2 s for it to go."""
    for _ in range(200):
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        if cur.fetchone()[0] == 0:
            return True
        cur.execute("SELECT pg_sleep(0.01)")
    return False


def _terminate(pid: int) -> None:
    """End a session from outside, as a server restart or an idle timeout would."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        # pg_terminate_backend only signals: wait until the session is really gone.
        assert _session_ended(other.cursor(), pid)


# --- run_db ------------------------------------------------------------------------------


def test_run_db_runs_the_function_in_a_worker_thread_with_its_arguments():
    def work(a: int, *, b: int) -> tuple[int, str]:
        with connection.cursor() as cur:
            cur.execute("SELECT %s + %s", [a, b])
            return cur.fetchone()[0], threading.current_thread().name

    async def steps() -> tuple[tuple[int, str], str]:
        return await asyncdb.run_db(work, 40, b=2), threading.current_thread().name

    (answer, worker), loop_thread = on_loop(steps)
    assert answer == 42
    assert worker != loop_thread


def test_run_db_turns_an_unreachable_database_into_database_unavailable_and_reconnects_after():
    calls: list[int] = []

    def fails_once() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        with connection.cursor() as cur:
            cur.execute("SELECT 7")
            return cur.fetchone()[0]

    async def steps() -> tuple[BaseException | None, int]:
        try:
            await asyncdb.run_db(fails_once)
        except DatabaseUnavailable as exc:
            caught: BaseException | None = exc
        else:
            caught = None
        return caught, await asyncdb.run_db(fails_once)

    caught, answer = on_loop(steps)
    assert isinstance(caught, DatabaseUnavailable)
    assert isinstance(caught.__cause__, OperationalError)
    assert answer == 7


def test_run_db_raises_other_database_errors_as_they_are():
    def twice() -> None:
        for _ in range(2):
            User.objects.create(email="twice@example.com")

    async def steps() -> None:
        await asyncdb.run_db(twice)

    with pytest.raises(IntegrityError):
        on_loop(steps)


@needs_postgres
def test_run_db_replaces_a_thread_connection_the_server_ended_while_idle():
    async def steps() -> tuple[int, int]:
        first = await asyncdb.run_db(_backend_pid)
        await asyncdb.run_db(_terminate, first)  # from another connection of that thread
        return first, await asyncdb.run_db(_backend_pid)

    # One worker thread, so both statements use the same thread's connection.
    async def one_thread() -> tuple[int, int]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
        return await steps()

    first, second = on_loop(one_thread)
    assert first != second


def test_statements_go_on_the_loop_only_on_postgresql():
    assert asyncdb.statements_on_loop() is ON_POSTGRES


# --- refresh_in_background -----------------------------------------------------------------


def test_one_background_refresh_runs_at_a_time():
    calls: list[int] = []
    started = threading.Event()
    release = threading.Event()

    def reload() -> None:
        calls.append(1)
        started.set()
        release.wait(5)

    async def steps() -> tuple[int, bool]:
        asyncdb.refresh_in_background("copy", reload)
        running = asyncdb.pending_refresh("copy")
        for _ in range(4):  # the requests that find the copy stale meanwhile
            asyncdb.refresh_in_background("copy", reload)
        same = asyncdb.pending_refresh("copy") is running
        assert await asyncio.to_thread(started.wait, 10)
        during = len(calls)
        release.set()
        await running
        asyncdb.refresh_in_background("copy", reload)  # the next one, once it has finished
        await asyncdb.pending_refresh("copy")
        return during, same

    during, same = on_loop(steps)
    assert during == 1 and same
    assert len(calls) == 2


def test_a_failed_background_refresh_is_logged_once_and_retried_later(caplog, monkeypatch):
    calls: list[int] = []

    def reload() -> None:
        calls.append(1)
        raise RuntimeError("cache down")

    async def steps() -> None:
        asyncdb.refresh_in_background("copy", reload)
        failed = asyncdb.pending_refresh("copy")
        with pytest.raises(RuntimeError):
            await failed
        for _ in range(5):  # the requests right after it start nothing
            asyncdb.refresh_in_background("copy", reload)
        assert asyncdb.pending_refresh("copy") is failed
        monkeypatch.setattr(asyncdb, "REFRESH_RETRY_S", 0.0)  # the retry delay has passed
        asyncdb.refresh_in_background("copy", reload)
        assert asyncdb.pending_refresh("copy") is not failed
        with pytest.raises(RuntimeError):
            await asyncdb.pending_refresh("copy")

    on_loop(steps)
    assert len(calls) == 2
    assert caplog.text.count("background refresh failed: RuntimeError") == 2


# --- fetch_one_on_loop (PostgreSQL) --------------------------------------------------------


@needs_postgres
def test_a_statement_on_the_loop_returns_its_first_row_with_django_types_or_none():
    async def steps() -> tuple[Any, Any, Any]:
        row = await asyncdb.fetch_one_on_loop(
            "SELECT %s::numeric, %s::timestamptz, %s::int", [Decimal("1.50"), "2026-01-02", 3]
        )
        nothing = await asyncdb.fetch_one_on_loop("SELECT 1 WHERE %s::int = 2", [1])
        thread = await asyncdb.run_db(
            lambda: connection.cursor().execute("SELECT %s::timestamptz", ["2026-01-02"]).fetchone()
        )
        return row, nothing, thread

    (amount, when, number), nothing, (from_thread,) = on_loop(steps)
    assert amount == Decimal("1.50") and number == 3
    assert when == datetime(2026, 1, 2, tzinfo=UTC) == from_thread
    assert nothing is None


@needs_postgres
def test_a_failed_statement_raises_and_the_connection_serves_the_next():
    async def steps() -> tuple[tuple, tuple]:
        with pytest.raises(psycopg.errors.DivisionByZero):
            await asyncdb.fetch_one_on_loop("SELECT 1 / %s", [0])
        row = await asyncdb.fetch_one_on_loop("SELECT %s::int + 1, pg_backend_pid()", [41])
        again = await asyncdb.fetch_one_on_loop("SELECT %s::int + 1, pg_backend_pid()", [1])
        return row, again

    (answer, pid), (_, pid_again) = on_loop(steps)
    assert answer == 42 and pid == pid_again


@needs_postgres
def test_a_loop_connection_the_server_ended_while_idle_is_replaced():
    async def steps() -> tuple[int, int]:
        _, first = await asyncdb.fetch_one_on_loop("SELECT 1, pg_backend_pid()", [])
        await asyncdb.run_db(_terminate, first)
        _, second = await asyncdb.fetch_one_on_loop("SELECT 1, pg_backend_pid()", [])
        return first, second

    first, second = on_loop(steps)
    assert first != second


@needs_postgres
def test_a_connection_lost_mid_statement_is_database_unavailable_and_the_next_reconnects():
    async def steps() -> tuple[BaseException | None, tuple]:
        _, pid = await asyncdb.fetch_one_on_loop("SELECT 1, pg_backend_pid()", [])
        statement = asyncio.create_task(
            asyncdb.fetch_one_on_loop("SELECT pg_backend_pid(), pg_sleep(5)::text", [])
        )
        await asyncio.sleep(0.1)  # sent; its answer is owed
        await asyncdb.run_db(_terminate, pid)
        try:
            await statement
        except DatabaseUnavailable as exc:
            caught: BaseException | None = exc
        else:
            caught = None
        return caught, await asyncdb.fetch_one_on_loop("SELECT 1", [])

    caught, after = on_loop(steps)
    assert isinstance(caught, DatabaseUnavailable)
    assert isinstance(caught.__cause__, psycopg.OperationalError)
    assert after == (1,)


@needs_postgres
def test_an_unreachable_server_is_database_unavailable():
    async def steps() -> None:
        await asyncdb.fetch_one_on_loop("SELECT 1", [])

    # Nothing listens on that port. Put back by hand: the sessions are ended after the test.
    settings_dict = connections["default"].settings_dict
    port = settings_dict["PORT"]
    settings_dict["PORT"] = str(free_port())
    try:
        with pytest.raises(DatabaseUnavailable):
            on_loop(steps)
    finally:
        settings_dict["PORT"] = port


@needs_postgres
def test_statements_beyond_the_connection_limit_wait_their_turn(settings):
    settings.LOWROUTER_LOOP_DB_CONNECTIONS = 2

    async def steps() -> tuple[list, tuple, int]:
        sql = "SELECT pg_backend_pid(), pg_sleep(0.02)::text"
        tasks = [asyncio.create_task(asyncdb.fetch_one_on_loop(sql, [])) for _ in range(8)]
        await asyncio.sleep(0.005)
        tasks[5].cancel()  # a waiter that leaves must not take a slot with it
        done = await asyncio.gather(*tasks, return_exceptions=True)
        after = await asyncdb.fetch_one_on_loop("SELECT 1", [])
        # Every slot was given back: as many statements as the limit still run at once.
        both = await asyncio.gather(*(asyncdb.fetch_one_on_loop(sql, []) for _ in range(2)))
        return done, after, len({pid for pid, _ in both})

    done, after, concurrent = on_loop(steps)
    assert isinstance(done[5], asyncio.CancelledError)
    assert len({row[0] for i, row in enumerate(done) if i != 5}) <= 2
    assert after == (1,)
    assert concurrent == 2


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


async def _cancelled_after(delay: float, statement: Awaitable[Any]) -> tuple[float, bool]:
    task = asyncio.ensure_future(statement)
    await asyncio.sleep(delay)
    started = asyncio.get_running_loop().time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return asyncio.get_running_loop().time() - started, task.cancelled()


@needs_postgres
def test_a_statement_asked_to_finish_is_seen_through_before_the_cancellation(settings):
    """Cancelled while connecting, while the answer is owed, or while queued for the only
    connection: the statement still runs, the caller gets the CancelledError once it has, and
    the connection is kept for the next statement."""
    settings.LOWROUTER_LOOP_DB_CONNECTIONS = 1
    sql = _counter()

    async def steps() -> tuple[int, float, bool, int]:
        # Cancelled while the loop's first connection is being opened.
        await _cancelled_after(0, asyncdb.fetch_one_on_loop(sql, [0], finish_if_cancelled=True))
        (pid, *_) = await asyncdb.fetch_one_on_loop(sql, [0])
        # Cancelled while the answer is owed: raised only once the statement has run.
        waited, _ = await _cancelled_after(
            0.05, asyncdb.fetch_one_on_loop(sql, [0.3], finish_if_cancelled=True)
        )
        # Cancelled while queued behind another statement for the only connection.
        busy = asyncio.create_task(asyncdb.fetch_one_on_loop(sql, [0.2]))
        await asyncio.sleep(0.02)
        _, was_cancelled = await _cancelled_after(
            0.02, asyncdb.fetch_one_on_loop(sql, [0], finish_if_cancelled=True)
        )
        await busy
        (last_pid, *_) = await asyncdb.fetch_one_on_loop(sql, [0])
        return pid, waited, was_cancelled, last_pid

    pid, waited, was_cancelled, last_pid = on_loop(steps)
    assert _statements_run() == 6
    assert waited >= 0.2 and was_cancelled
    assert last_pid == pid  # one connection served them all


@needs_postgres
def test_a_statement_not_asked_to_finish_is_abandoned_with_its_connection():
    async def steps() -> tuple[float, int, int]:
        _, first = await asyncdb.fetch_one_on_loop("SELECT 1, pg_backend_pid()", [])
        waited, _ = await _cancelled_after(
            0.05, asyncdb.fetch_one_on_loop("SELECT pg_sleep(5)", [])
        )
        _, after = await asyncdb.fetch_one_on_loop("SELECT 1, pg_backend_pid()", [])
        return waited, first, after

    waited, first, after = on_loop(steps)
    assert waited < 1
    assert after != first  # the abandoned connection was never reused


@needs_postgres
def test_closing_the_loop_connections_ends_their_sessions():
    async def steps() -> int:
        _, pid = await asyncdb.fetch_one_on_loop("SELECT 1, pg_backend_pid()", [])
        await asyncdb.close_loop_connections()
        return pid

    pid = on_loop(steps)
    with connection.cursor() as cur:
        assert _session_ended(cur, pid)
