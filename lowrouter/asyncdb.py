"""Running synchronous ORM work from the event loop without blocking it."""

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import DatabaseError, InterfaceError, OperationalError, connection

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


def _guarded(fn: Callable[P, T]) -> Callable[P, T]:
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            _drop_connection()
            raise DatabaseUnavailable(exc.__class__.__name__) from exc

    return call


async def run_db(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` in a worker thread (not the single shared sync thread), so concurrent requests
    do their database work in parallel; each worker thread keeps its own connection."""
    return await sync_to_async(_guarded(fn), thread_sensitive=False)(*args, **kwargs)
