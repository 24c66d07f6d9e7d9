"""Slot health is shared by every web process: a failure seen by one server is skipped by
another. Two real uvicorn processes on the test database and the same Redis."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.db import connection

from tests.conftest import ON_POSTGRES, ON_REDIS, free_port
from tests.routing.conftest import FLEET_MODEL

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not (ON_POSTGRES and ON_REDIS), reason="needs DATABASE_URL (PostgreSQL) and REDIS_URL"
)


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _start_server(port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "LOWROUTER_ROUTING_HEALTH_REFRESH_S": "0",
        "CONN_MAX_AGE": "0",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "lowrouter.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--lifespan",
            "off",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_ready(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode())
        try:
            httpx.get(url + "/api/v1/providers", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


@pytest.fixture
def two_servers(fleet) -> Iterator[list[str]]:
    ports = [free_port(), free_port()]
    procs = [_start_server(p) for p in ports]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for proc, url in zip(procs, urls, strict=True):
            _wait_ready(proc, url)
        yield [u + "/api/v1" for u in urls]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def test_a_failure_seen_by_one_process_is_skipped_by_another(fleet, two_servers):
    first, second = two_servers
    body = {"model": FLEET_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    auth = {"Authorization": f"Bearer {fleet.funded.token}"}
    fleet.servers["alpha"].config.fault = "http_error"
    fleet.servers["alpha"].config.fault_count = 1

    resp = httpx.post(first + "/chat/completions", json=body, headers=auth, timeout=20)
    assert resp.json()["lowrouter"]["provider"] == "beta"
    assert fleet.served() == {"alpha": 1, "beta": 1}

    resp = httpx.post(second + "/chat/completions", json=body, headers=auth, timeout=20)
    assert resp.json()["lowrouter"]["provider"] == "beta"
    # The second process never asked alpha: it read the first one's mark from Redis.
    assert fleet.served() == {"alpha": 1, "beta": 2}
    gen_id = resp.headers["X-LowRouter-Generation-ID"]
    trace = httpx.get(f"{second}/generation/{gen_id}", headers=auth, timeout=10).json()[
        "routing_trace"
    ]
    assert {
        "model": FLEET_MODEL,
        "provider": "alpha",
        "region": "eu-west",
        "why": "unhealthy:http_500",
    } in trace["removed"]
    assert [a["provider"] for a in trace["attempts"]] == ["beta"]
