"""Database connections of one gateway process stay bounded whatever the load, and a database
that refuses connections gets a clean 503, never a 500.

Under ASGI every sync view runs in a thread of its own, and a connection kept per thread
(``CONN_MAX_AGE``) was left open by each one: 20 parallel requests left 34 idle connections
until PostgreSQL answered "too many clients". The gateway here is a real process under uvicorn,
as production runs it, on a PostgreSQL cluster of the test's own with a small
``max_connections``, so the old behaviour cannot exhaust the shared server other tests use.
Connections are counted in pg_stat_activity by the process's application_name (``PGAPPNAME``).

Sync views borrow from the process's pool alone, so their bound is ``LOWROUTER_DB_POOL_SIZE``;
the chat path's own connections (``LOWROUTER_LOOP_DB_CONNECTIONS``) are not opened here.
"""

import asyncio
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from tests.conftest import needs_postgres
from tests.processes import GatewayProcess, manage, start_gateway_process
from tests.reliability.conftest import wait_until
from tests.reliability.private_postgres import (
    PrivateCluster,
    needs_private_cluster,
    private_cluster,
)

pytestmark = [needs_postgres, needs_private_cluster, pytest.mark.timeout(240)]

EMAIL = "connections@example.com"
MAX_CONNECTIONS = 30  # the private cluster's: above the pool, far below 200 requests
POOL_SIZE = 4
POOL_MIN_SIZE = 2  # lowrouter/settings.py: what the pool keeps open when idle
CONCURRENT = 200


@dataclass
class Cluster:
    cluster: PrivateCluster
    env: dict[str, str]
    token: str

    def connect(self) -> psycopg.Connection:
        url = self.env["DATABASE_URL"].replace("postgres://", "postgresql://")
        return psycopg.connect(url, autocommit=True)

    def start_gateway(self, **env: str) -> tuple[GatewayProcess, str]:
        """A gateway process on this cluster, and the application_name of its connections."""
        app = f"lowrouter-test-{uuid.uuid4().hex[:8]}"
        settings = {
            **self.env,
            # libpq names every connection of the process after it: that is how they are counted.
            "PGAPPNAME": app,
            "LOWROUTER_DB_POOL_SIZE": str(POOL_SIZE),
            **env,
        }
        return start_gateway_process(self.env["DATABASE_URL"], **settings), app


@pytest.fixture(scope="module")
def small_cluster() -> Iterator[Cluster]:
    with private_cluster({"max_connections": str(MAX_CONNECTIONS)}) as cluster:
        env = {
            "DATABASE_URL": cluster.create_database("lowrouter"),
            # Its own cache keys when REDIS_URL is set: nothing shared with the test database's.
            "CACHE_KEY_PREFIX": f"lr-conns-{uuid.uuid4().hex[:8]}",
        }
        manage("migrate", "--noinput", "-v0", **env)
        manage("create_account", EMAIL, "--credits", "10", "--verified", **env)
        token = manage("create_key", EMAIL, "--name", "conns", **env).strip().splitlines()[-1]
        yield Cluster(cluster, env, token)


def _connections_of(observer: psycopg.Connection, application_name: str) -> int:
    return observer.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'lowrouter' "
        "AND application_name = %s",
        [application_name],
    ).fetchone()[0]


class _PeakWatcher:
    """Samples the process's connection count in a thread while the load runs."""

    def __init__(self, observer: psycopg.Connection, application_name: str) -> None:
        self.observer, self.application_name = observer, application_name
        self.peak = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, _connections_of(self.observer, self.application_name))
            self.done.wait(0.005)

    def __enter__(self) -> "_PeakWatcher":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=10)


async def _get_all(url: str, headers: dict[str, str], count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(*(client.get(url, headers=headers) for _ in range(count)))


def test_two_hundred_concurrent_sync_view_requests_stay_within_the_pool_bound_and_return_to_it(
    small_cluster,
):
    gateway, app = small_cluster.start_gateway(
        # Idle connections above the minimum close after a second, so the return is quick.
        LOWROUTER_DB_POOL_MAX_IDLE="1",
        # Time to wait for a connection: every request here must be served, however slow the
        # shared machine is; refusals have a test of their own.
        LOWROUTER_DB_POOL_TIMEOUT="60",
    )
    with ExitStack() as stack:
        stack.callback(gateway.stop)
        gateway.wait_ready()
        observer = stack.enter_context(small_cluster.connect())
        headers = {"Authorization": f"Bearer {small_cluster.token}"}
        with _PeakWatcher(observer, app) as watcher:
            replies = asyncio.run(_get_all(gateway.api + "/credits", headers, CONCURRENT))
        statuses = [r.status_code for r in replies]
        assert watcher.peak <= POOL_SIZE, f"{watcher.peak} connections, {statuses.count(200)} OK"
        assert statuses == [200] * CONCURRENT
        # Back to what the pool keeps while idle, on its own.
        wait_until(lambda: _connections_of(observer, app) <= POOL_MIN_SIZE, timeout=30)
        assert gateway.proc.poll() is None


def _fill(cluster: Cluster, stack: ExitStack) -> int:
    """Open connections until the server refuses one ("too many clients"); keep them open."""
    held = 0
    while True:
        try:
            stack.enter_context(cluster.connect())
        except psycopg.OperationalError as exc:
            assert "too many clients" in str(exc)
            return held
        held += 1


def test_a_database_refusing_connections_gets_503_in_the_api_shape_and_a_plain_page(
    small_cluster,
):
    with ExitStack() as stack:
        filled = stack.enter_context(ExitStack())
        assert _fill(small_cluster, filled) > 0
        # Started while the server refuses everyone: its pool has no connection to give.
        gateway, _ = small_cluster.start_gateway(LOWROUTER_DB_POOL_TIMEOUT="1")
        stack.callback(gateway.stop)
        gateway.wait_ready()
        headers = {"Authorization": f"Bearer {small_cluster.token}"}

        api = httpx.get(gateway.api + "/credits", headers=headers, timeout=30)
        assert api.status_code == 503, api.text[:500]
        assert api.headers["content-type"] == "application/json"
        error = api.json()["error"]
        assert error["code"] == "database_unavailable"
        assert error["type"] and error["message"]
        assert api.headers["X-Request-ID"]

        page = httpx.get(gateway.url + "/", timeout=30)
        assert page.status_code == 503, page.text[:500]
        assert page.headers["content-type"].startswith("text/html")
        assert "Traceback" not in page.text and "OperationalError" not in page.text

        # The refusal was the server's: once it takes clients again, so does the gateway.
        filled.close()
        wait_until(
            lambda: httpx.get(gateway.api + "/credits", headers=headers).status_code == 200,
            timeout=30,
        )
