"""Load with money: two gateway processes sharing PostgreSQL and Redis, many concurrent requests
against small balances and small key limits. Afterwards the books are exact in every account."""

import asyncio
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.db import connection

from billing.ledger import ledger_sum
from billing.models import Generation, Hold, KeySpend, Wallet
from billing.money import credits_to_micros
from tests.conftest import free_port, make_funded, needs_postgres, needs_redis
from tests.reliability.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [needs_postgres, needs_redis, pytest.mark.timeout(240)]


def _start_gateway(db_name: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    s = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{db_name}",
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "lowrouter.asgi:application",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(url: str, proc: subprocess.Popen) -> None:
    def up() -> bool:
        assert proc.poll() is None, "gateway process exited"
        try:
            return httpx.get(url + "/api/v1/models", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=60)


async def _fire(urls: list[str], tokens: list[str], total: int, concurrency: int) -> list[int]:
    statuses: list[int] = []
    queue = list(range(total))
    body = {
        "model": "demo/echo-small",
        "messages": [{"role": "user", "content": "load with money"}],
        "max_tokens": 20,
    }

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            i = queue.pop()
            resp = await client.post(
                urls[i % len(urls)] + "/api/v1/chat/completions",
                json={**body, "stream": i % 3 == 0},
                headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"},
            )
            statuses.append(resp.status_code)

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return statuses


def test_two_processes_never_overspend_and_keep_exact_books(catalogue, upstream):
    # Small balances (a handful of requests each) and small key limits on funded accounts.
    poor = [make_funded(f"poor{i}@example.com", credits=Decimal("0.07")) for i in range(3)]
    limited = [
        make_funded(
            f"lim{i}@example.com", credits=Decimal("100"), daily_credit_limit=Decimal("0.05")
        )
        for i in range(3)
    ]
    everyone = poor + limited
    db_name = connection.settings_dict["NAME"]
    procs = [_start_gateway(db_name) for _ in range(2)]
    try:
        for proc, url in procs:
            _wait_ready(url, proc)
        statuses = asyncio.run(
            _fire([u for _, u in procs], [f.token for f in everyone], total=240, concurrency=32)
        )
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(10)
    assert 500 not in statuses
    assert set(statuses) <= {200, 402, 429}
    assert statuses.count(200) > 0 and (statuses.count(402) + statuses.count(429)) > 0
    assert not Hold.objects.exists()
    for f in everyone:
        wallet = Wallet.objects.get(account=f.user)
        assert wallet.balance_micros == ledger_sum(f.user)
        assert wallet.balance_micros >= 0
        assert wallet.reserved_micros == 0
    for f in limited:
        for ks in KeySpend.objects.filter(key=f.key):
            assert ks.reserved_micros == 0
            assert ks.spent_micros <= credits_to_micros(Decimal("0.05"))
    settled = Generation.objects.filter(account__in=[f.user for f in everyone]).count()
    assert settled == statuses.count(200)
