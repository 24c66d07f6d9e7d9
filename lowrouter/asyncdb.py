"""Database work for the event loop, which must never wait on a query.

Two ways, one for each kind of work:

- ``run_db`` runs synchronous ORM code in a worker thread (anything, on either database).
- ``fetch_one_on_loop`` sends one statement on the event loop itself, through psycopg's async
  connection, PostgreSQL only. The request path's three statements (authentication,
  reservation, settlement) go this way there: each is a single autocommit statement, so no
  transaction has to span a thread. Measured at 16 concurrent requests on the 2-core target
  machine, a statement handed to a thread cost ~350 us of CPU (hand-off, wake-ups, GIL traffic)
  against ~75 us sent from the loop at the libpq level (``_LoopConnection``).

A small library with a fence around it: it imports Django and psycopg, none of LowRouter's
apps, and ``__all__`` is its whole interface. Its contract, tested in
``tests/lib/test_asyncdb_contract.py``:

- ``run_db(fn, *args, **kwargs)``: ``fn`` in a worker thread of the loop's default executor,
  each thread with its own Django connection. A connection the server ended while idle is
  replaced before use; an ``OperationalError`` or ``InterfaceError`` drops the thread's
  connection (the next call reconnects) and is raised as ``DatabaseUnavailable``; any other
  error is raised as it is.
- ``fetch_one_on_loop(sql, params, *, finish_if_cancelled=False)``: one autocommit statement on
  the loop's own connections (PostgreSQL only), at most ``LOWROUTER_LOOP_DB_CONNECTIONS`` at once,
  first come first served; its first row with Django's types, or None. Lost or unreachable
  server: ``DatabaseUnavailable``; a failing statement: psycopg's error, connection kept;
  cancelled: the connection is dropped, unless ``finish_if_cancelled`` (then the statement is
  seen through and the cancellation raised after). ``close_loop_connections()`` closes them.
- ``statements_on_loop()``: whether the configured database takes the loop path.
- ``refresh_in_background(name, fn)``: at most one reload of an in-process copy at a time per
  loop, a failure logged once and not retried for ``REFRESH_RETRY_S``; copies may be served
  ``STALE_GRACE_S`` past their interval meanwhile.
"""

import asyncio
import collections
import contextlib
import logging
import select
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import ParamSpec, Protocol, TypeVar

import psycopg
from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    connections,
)
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

__all__ = [
    "REFRESH_RETRY_S",
    "STALE_GRACE_S",
    "DatabaseUnavailable",
    "close_loop_connections",
    "fetch_one_on_loop",
    "refresh_in_background",
    "run_db",
    "statements_on_loop",
]

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database could not be reached; the caller answers 503 and retries nothing."""


def _drop_connection() -> None:
    """Forget this worker thread's connection so its next unit of work reconnects (e.g. after a
    PostgreSQL restart). Closing a dead connection can itself fail: that is fine."""
    try:
        connection.close()
    except DatabaseError:
        connection.connection = None
    connection.needs_rollback = False
    connection.in_atomic_block = False
    connection.savepoint_ids = []


class _Socket(Protocol):
    def fileno(self) -> int: ...


def closed_by_server(raw: _Socket) -> bool:
    """A PostgreSQL connection the server ended while it sat idle (a restart, an idle timeout,
    pg_terminate_backend) has the server's goodbye or end-of-file waiting on its socket, and
    nothing else: this gateway never LISTENs. Finding it costs a zero-timeout select instead of a
    failed request."""
    try:
        readable, _, _ = select.select([raw.fileno()], [], [], 0)
    except (OSError, ValueError, DatabaseError, psycopg.Error):
        return True
    return bool(readable)


def _drop_if_closed_by_server() -> None:
    """Replace this thread's idle connection if the server ended it: the next statement then
    opens a fresh connection."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    raw = connection.connection
    if raw is not None and closed_by_server(raw):
        _drop_connection()


def _give_back_pooled_connection() -> None:
    """Return this worker thread's connection to the pool (PostgreSQL, see settings.py). The
    thread outlives the unit of work and no request signal ever closes its connection: kept,
    each of the executor's threads would hold one of the pool's few connections for good."""
    if connection.connection is not None and getattr(connection, "pool", None) is not None:
        connection.close()


def _guarded(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    _drop_if_closed_by_server()
    try:
        return fn(*args, **kwargs)
    except (OperationalError, InterfaceError) as exc:
        _drop_connection()
        raise DatabaseUnavailable(exc.__class__.__name__) from exc
    finally:
        _give_back_pooled_connection()


async def run_db(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` in one of the event loop's worker threads, so concurrent requests do their
    database work in parallel and the loop never waits on a query. On SQLite each thread keeps
    its own connection; on PostgreSQL it borrows one from the process's connection pool for the
    unit of work. The threads are the loop's default executor (min(32, cores + 4) threads),
    shut down with the loop.

    A plain executor hand-off: asgiref's ``sync_to_async`` does the same with about 50 us more
    CPU per call, and the request path makes three of these calls."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, partial(_guarded, fn, args, kwargs))


# How long past its check interval an in-process copy (catalogue, policies, slot health) may
# still be served while one background refresh of it runs; older than that, the request waits
# for the refresh itself, so a refresh that keeps failing surfaces as the request's error.
STALE_GRACE_S = 5.0

_refreshes: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future] = {}


def refresh_in_background(name: str, fn: Callable[[], object]) -> None:
    """Start ``fn`` (which reloads the in-process copy called ``name``) in a worker thread,
    unless it is already running on this loop. The requests that find the copy just past its
    interval are answered from it meanwhile: without this every request arriving during the
    reload went to a thread to reload it again (measured at 32 concurrent streams: routing took
    0.95 ms on average against 0.19 ms at the median).

    A failed refresh is not tried again for REFRESH_RETRY_S: one thread and one warning, not one
    per request, while the cache or the database is down."""
    key = (asyncio.get_running_loop(), name)
    last = _refreshes.get(key)
    if last is not None and not last.done():
        return
    failed_at = _refresh_failed_at.get(key)
    if failed_at is not None and time.monotonic() - failed_at < REFRESH_RETRY_S:
        return
    refresh = asyncio.ensure_future(run_db(fn))
    refresh.add_done_callback(partial(_note_refresh_failure, key))
    _refreshes[key] = refresh


def pending_refresh(name: str) -> asyncio.Future | None:
    """The background refresh of ``name`` started on this loop (running or finished), or None:
    what to await to see a refresh through (tests, a shutdown that must not cut one off)."""
    return _refreshes.get((asyncio.get_running_loop(), name))


REFRESH_RETRY_S = 1.0
_refresh_failed_at: dict[tuple[asyncio.AbstractEventLoop, str], float] = {}


def _note_refresh_failure(key: tuple, refresh: asyncio.Future) -> None:
    if not refresh.cancelled() and refresh.exception() is not None:
        _refresh_failed_at[key] = time.monotonic()
        # The copy stays as it was; past STALE_GRACE_S the next request refreshes it itself.
        log.warning("background refresh failed: %s", type(refresh.exception()).__name__)


def statements_on_loop() -> bool:
    """Whether the request path's statements go on the event loop (PostgreSQL) rather than to a
    worker thread (SQLite, whose driver has no async interface). Read from the settings: looking
    the connection up costs more than that on every request."""
    return "postgresql" in settings.DATABASES[DEFAULT_DB_ALIAS]["ENGINE"]


class _LoopConnection:
    """A PostgreSQL connection driven from the event loop at the libpq level.

    psycopg's async cursor spends ~130 us of CPU per statement here in its generic machinery
    (query conversion, generators, a reader registered per wait); the request path only ever
    sends the same three statements, so each is prepared once per connection and then sent with
    ``send_query_prepared``, its row loaded by psycopg's own Transformer with Django's type
    adapters: measured ~75 us per statement at 16 concurrent requests. The AsyncConnection
    opened it and owns it (closing, its adapters); nothing else uses it meanwhile."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self.pgconn.nonblocking = 1
        self.prepared: set[bytes] = set()
        # One statement at a time per connection, so one Transformer serves them all (as one
        # does per psycopg cursor).
        self.tx = Transformer(conn)

    @property
    def closed(self) -> bool:
        return self.conn.closed

    def fileno(self) -> int:
        return self.pgconn.socket

    async def fetch_one(
        self, sql: str, params: Sequence, held: list[asyncio.CancelledError] | None = None
    ) -> tuple | None:
        name, numbered = _statement(sql)
        if name not in self.prepared:
            self.pgconn.send_prepare(name, numbered)
            self._check(await _through(self._result, held), pq.ExecStatus.COMMAND_OK)
            self.prepared.add(name)
        tx = self.tx
        self.pgconn.send_query_prepared(
            name, tx.dump_sequence(params, [PyFormat.TEXT] * len(params))
        )
        result = self._check(await _through(self._result, held), pq.ExecStatus.TUPLES_OK)
        if not result.ntuples:
            return None
        tx.set_pgresult(result)
        return tx.load_row(0, tuple)

    async def _result(self) -> "pq.abc.PGresult":
        """Flush what was sent, wait for the whole answer, return its last result. Interrupted,
        it can be awaited again: libpq keeps what was sent and received meanwhile."""
        pgconn, loop, fd = self.pgconn, asyncio.get_running_loop(), self.fileno()
        while pgconn.flush():
            writable = loop.create_future()
            loop.add_writer(fd, _set_done, writable)
            try:
                await writable
            finally:
                loop.remove_writer(fd)
        pgconn.consume_input()
        if pgconn.is_busy():
            done = loop.create_future()

            def readable() -> None:
                try:
                    pgconn.consume_input()
                except psycopg.Error as exc:
                    if not done.done():
                        done.set_exception(exc)
                    return
                if not pgconn.is_busy() and not done.done():
                    done.set_result(None)

            loop.add_reader(fd, readable)
            try:
                await done
            finally:
                loop.remove_reader(fd)
        last = None
        while (result := pgconn.get_result()) is not None:
            last = result
        if last is None:
            raise psycopg.OperationalError("the server sent no result")
        return last

    def _check(self, result: "pq.abc.PGresult", expected: "pq.ExecStatus") -> "pq.abc.PGresult":
        if result.status == expected:
            return result
        if self.pgconn.status != pq.ConnStatus.OK:
            raise psycopg.OperationalError("the connection to the server was lost")
        sqlstate = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
        message = result.error_message.decode(errors="replace").strip()
        try:
            error = psycopg.errors.lookup(sqlstate)
        except KeyError:
            error = psycopg.DatabaseError
        raise error(message)


def _set_done(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


_statements: dict[str, tuple[bytes, bytes]] = {}


def _statement(sql: str) -> tuple[bytes, bytes]:
    """A name for the statement and its text with ``$n`` placeholders (the request path's SQL
    has no literal ``%``)."""
    found = _statements.get(sql)
    if found is None:
        parts = sql.split("%s")
        numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
        found = _statements[sql] = (f"lowrouter_{len(_statements)}".encode(), numbered.encode())
    return found


class _LoopConnections:
    """One event loop's PostgreSQL connections: at most ``limit`` in use at once (further
    statements wait their turn, first come first served), the idle ones kept for the next
    statement."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.waiting: collections.deque[asyncio.Future] = collections.deque()
        self.idle: list[_LoopConnection] = []

    async def acquire(self) -> None:
        # asyncio.Semaphore does the same with about twice the work when nobody waits.
        if self.in_use >= self.limit or self.waiting:
            turn = asyncio.get_running_loop().create_future()
            self.waiting.append(turn)
            try:
                await turn
            except BaseException:
                if turn.done() and not turn.cancelled():
                    self.release()  # handed a slot just as we were cancelled: pass it on
                else:
                    with contextlib.suppress(ValueError):  # release() may have dropped it
                        self.waiting.remove(turn)
                raise
            return  # release() handed its slot over: in_use already counts it
        self.in_use += 1

    def release(self) -> None:
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.in_use -= 1

    def take_idle(self) -> _LoopConnection | None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and not closed_by_server(conn):
                return conn
            _discard(conn)
        return None


_loops: dict[asyncio.AbstractEventLoop, _LoopConnections] = {}


@dataclass(frozen=True)
class LoopConnectionsState:
    """What this event loop's connections look like between statements (tests, diagnostics)."""

    in_use: int
    # PostgreSQL backend pids of the idle connections, the next to be used last.
    idle_pids: list[int]


def loop_connections_state() -> LoopConnectionsState | None:
    """The state of this event loop's connections, or None before its first statement."""
    pool = _loops.get(asyncio.get_running_loop())
    if pool is None:
        return None
    return LoopConnectionsState(
        in_use=pool.in_use, idle_pids=[c.pgconn.backend_pid for c in pool.idle]
    )


def connection_loops() -> list[asyncio.AbstractEventLoop]:
    """The event loops that hold connections (their owner closes them on that loop, with
    ``close_loop_connections``)."""
    return list(_loops)


def _discard(conn: _LoopConnection | None) -> None:
    """Drop a connection whose state is unknown (an error, a cancelled statement): closing the
    socket needs no await."""
    if conn is not None and not conn.closed:
        with contextlib.suppress(psycopg.Error):
            conn.pgconn.finish()


async def _connect() -> _LoopConnection:
    """A connection with the parameters and type adapters of Django's own (so values come back
    exactly as the ORM's converters expect them), autocommit, in UTC."""
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    params.pop("cursor_factory", None)
    conn = await psycopg.AsyncConnection.connect(**params, autocommit=True)
    await conn.execute("SET TIME ZONE 'UTC'")
    return _LoopConnection(conn)


def _through(step: Callable[[], Awaitable[T]], held: list | None) -> Awaitable[T]:
    """``step()``, or, given ``held``, ``step()`` awaited to its end with any cancellation
    meanwhile kept in ``held`` (see ``_held_through``)."""
    return step() if held is None else _held_through(step, held)


async def _held_through(step: Callable[[], Awaitable[T]], held: list) -> T:
    """Await ``step()``; a cancellation meanwhile is kept in ``held`` and ``step()`` awaited
    again, which each step here allows: a place in the queue is asked for anew, an answer still
    owed is read where the first wait stopped, a connection is opened anew."""
    while True:
        try:
            return await step()
        except asyncio.CancelledError as exc:
            held.append(exc)


async def fetch_one_on_loop(
    sql: str, params: Sequence, *, finish_if_cancelled: bool = False
) -> tuple | None:
    """Run one statement (its own transaction) on this event loop's connections and return its
    first row. PostgreSQL only (see ``statements_on_loop``). A lost or unreachable server
    raises DatabaseUnavailable, like ``run_db``; any other database error is raised as psycopg's.

    With ``finish_if_cancelled`` a cancellation of the caller does not stop the statement: it is
    still sent and its answer read, and the CancelledError is raised after that (a database
    error, if one comes instead, is raised in its place). ``asyncio.shield`` gives the same
    guarantee by running the statement in a task of its own, which costs three more passes of
    the event loop before the caller resumes: measured at 64 concurrent streams, a settlement
    took 8.6 ms at the median through a shield and 3.5 ms with this.
    """
    held: list[asyncio.CancelledError] | None = [] if finish_if_cancelled else None
    loop = asyncio.get_running_loop()
    pool = _loops.get(loop)
    if pool is None:
        pool = _loops[loop] = _LoopConnections(settings.LOWROUTER_LOOP_DB_CONNECTIONS)
    await _through(pool.acquire, held)
    conn = pool.take_idle()
    try:
        if conn is None:
            conn = await _through(_connect, held)
        row = await conn.fetch_one(sql, params, held)
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        _discard(conn)
        raise DatabaseUnavailable(exc.__class__.__name__) from exc
    except psycopg.Error:
        # The statement failed on its own (its transaction rolled back); the connection is as
        # good as before. (None: opening it failed, so there is nothing to keep.)
        if conn is not None:
            pool.idle.append(conn)
        raise
    except BaseException:
        # Cancelled mid-statement: the connection may still owe a result; never reuse it.
        _discard(conn)
        raise
    finally:
        pool.release()
    pool.idle.append(conn)
    if held:
        raise held[0]
    return row


async def close_loop_connections() -> None:
    """Close this event loop's idle connections (server shutdown, tests)."""
    pool = _loops.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        for conn in pool.idle:
            await conn.conn.close()
        pool.idle.clear()
