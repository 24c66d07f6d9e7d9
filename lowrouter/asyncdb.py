"""Running synchronous ORM work from the event loop without blocking it."""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection

P = ParamSpec("P")
T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None


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


def _guarded(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    try:
        return fn(*args, **kwargs)
    except (OperationalError, InterfaceError) as exc:
        _drop_connection()
        raise DatabaseUnavailable(exc.__class__.__name__) from exc


def _pool() -> ThreadPoolExecutor:
    # Created on first use, so a server that forks workers after import gets one per worker.
    # Each thread keeps its own connection: DB_THREADS bounds a process's connections.
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(settings.DB_THREADS, thread_name_prefix="db")
    return _executor


async def run_db(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` in one of this process's database threads, so concurrent requests do their
    database work in parallel and the event loop never waits on a query.

    A plain executor hand-off: asgiref's ``sync_to_async`` does the same with about 50 us more
    CPU per call, and the request path makes three of these calls."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(), partial(_guarded, fn, args, kwargs))
