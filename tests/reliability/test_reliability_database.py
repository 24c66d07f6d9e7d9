"""PostgreSQL dropping the gateway's connections under load: requests fail cleanly (503
database_unavailable) or succeed, and the books are exact afterwards. The shared cluster is never
restarted: the gateway's own backends are terminated with pg_terminate_backend, as a restart
ends them. A real stop and start, on a cluster of the test's own, is in
test_reliability_pg_restart.py."""

import asyncio

import httpx
import pytest
from django.db import connection

from tests.conftest import needs_postgres
from tests.reliability.conftest import assert_books_exact, chat_body, wait_until

pytestmark = [needs_postgres, pytest.mark.timeout(180)]


def _terminate_gateway_backends() -> int:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cur.fetchone()[0]


async def _load(url: str, token: str, total: int, canary: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> httpx.Response:
            async with sem:
                return await client.post(
                    url + "/chat/completions",
                    json=chat_body(f"{canary}-{i}", stream=i % 2 == 0),
                    headers={"Authorization": f"Bearer {token}"},
                )

        def terminate_from_a_thread() -> None:
            try:
                _terminate_gateway_backends()
            finally:
                # Back to the pool: the thread's connection would otherwise stay out of it.
                connection.close()

        async def killer() -> None:
            for _ in range(3):
                await asyncio.sleep(0.2)
                await asyncio.to_thread(terminate_from_a_thread)

        results = await asyncio.gather(*(one(i) for i in range(total)), killer())
        return [r for r in results if r is not None]


def test_dropped_database_connections_fail_cleanly_and_keep_the_books(
    gateway, funded, catalogue, upstream, canary
):
    upstream.config.latency_ms = 20
    responses = asyncio.run(_load(gateway.api, funded.token, 60, canary))
    # The terminations hit this test's own connection too: reconnect before reading the books.
    connection.close()
    for resp in responses:
        assert resp.status_code in (200, 503), resp.text[:300]
        if resp.status_code == 503:
            assert resp.json()["error"]["code"] == "database_unavailable"
    # Holds whose settlement lost its connection stay until the orphan reaper releases them.
    from billing.spending import release_orphaned_holds

    wait_until(lambda: httpx.get(gateway.api + "/models", timeout=5).status_code == 200)
    from datetime import timedelta

    release_orphaned_holds(older_than=timedelta(0))
    assert_books_exact(funded.user)


def test_connections_the_server_ended_while_idle_are_replaced_without_a_failed_request(
    gateway, funded, catalogue, upstream
):
    headers = {"Authorization": f"Bearer {funded.token}"}

    async def burst() -> list[int]:
        # Concurrent, so that most of the server's database threads hold a connection.
        async with httpx.AsyncClient(timeout=30) as client:
            replies = await asyncio.gather(
                *(
                    client.post(
                        gateway.api + "/chat/completions",
                        json=chat_body(f"idle{i}"),
                        headers=headers,
                    )
                    for i in range(12)
                )
            )
        return [r.status_code for r in replies]

    assert asyncio.run(burst()) == [200] * 12
    assert _terminate_gateway_backends() > 0  # as a PostgreSQL restart or an idle timeout would
    connection.close()
    assert asyncio.run(burst()) == [200] * 12
    assert asyncio.run(burst()) == [200] * 12
    assert_books_exact(funded.user, generations=36)
