"""Redis stopping and coming back: the gateway keeps serving (without shared routing state) and
shares it again once Redis answers. A private redis-server is used; the shared one is never
touched."""

import shutil
import subprocess
import time

import httpx
import pytest
from django.core.cache import cache

from tests.conftest import free_port
from tests.reliability.conftest import assert_books_exact, chat_body, redis_hits, wait_until

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")


def _start_redis(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while (
        subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
        ).stdout.strip()
        != "PONG"
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    return proc


def test_gateway_serves_through_a_redis_outage_and_recovers(
    gateway, funded, catalogue, canary, settings
):
    # canary before settings: its sweep runs once the cache setting is restored, on the cache
    # that outlives the test; the private Redis is swept below, while it still runs.
    port = free_port()
    redis = _start_redis(port)
    settings.CACHES = {
        "default": {
            "BACKEND": "lowrouter.cache.ResilientRedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
        }
    }
    headers = {"Authorization": f"Bearer {funded.token}"}

    def ok() -> bool:
        resp = httpx.post(
            gateway.api + "/chat/completions", json=chat_body(canary), headers=headers, timeout=10
        )
        return resp.status_code == 200

    try:
        assert ok()
        redis.terminate()
        redis.wait(timeout=10)
        # Degraded: no shared state, but every request is still served and billed.
        assert all(ok() for _ in range(5))
        assert cache.get("anything") is None
        redis = _start_redis(port)
        assert ok()
        cache.set("probe", 1)
        wait_until(lambda: cache.get("probe") == 1)
        assert redis_hits(canary, f"redis://127.0.0.1:{port}/0") == []
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    assert_books_exact(funded.user, generations=7)
