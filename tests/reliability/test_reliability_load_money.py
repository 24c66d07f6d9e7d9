"""Load with money: two gateway processes sharing PostgreSQL and Redis, many concurrent requests
against small balances and small key limits. Afterwards the books are exact in every account."""

import asyncio
from decimal import Decimal

import httpx
import pytest

from billing.ledger import ledger_sum
from billing.models import Generation, Hold, KeySpend, Wallet
from billing.money import credits_to_micros
from tests.conftest import needs_postgres, needs_redis
from tests.factories import make_funded
from tests.processes import shared_database_url, start_gateway_process

pytestmark = [needs_postgres, needs_redis, pytest.mark.timeout(240)]


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
    gateways = [start_gateway_process(shared_database_url()) for _ in range(2)]
    try:
        urls = [g.wait_ready().url for g in gateways]
        statuses = asyncio.run(_fire(urls, [f.token for f in everyone], total=240, concurrency=32))
    finally:
        for g in gateways:
            g.stop()
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
