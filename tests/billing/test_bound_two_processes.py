"""Parallel requests through two gateway processes never spend past a key's limit or a wallet,
however they bound their output and however the upstream treats that bound.

Each case is one of the overspends an adversarial review found (issue 16, item 1): the hold
was sized from one bound while the upstream was sent another, or none, or ``n`` completions.
The fake upstream plays a server that obeys one field only, or no bound at all.
"""

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import pytest

from billing.ledger import ledger_sum
from billing.models import Generation, Hold, KeySpend, Wallet
from billing.money import credits_to_micros
from catalog.models import OutputBoundField, Provider
from catalog.snapshot import mark_catalog_changed
from devtools.demo_upstream import BoundObeyed
from routing.models import UpstreamOverrun
from tests.conftest import ON_POSTGRES, ON_REDIS
from tests.factories import make_funded
from tests.routing.test_failover_shared_health import start_shared_gateways

pytestmark = pytest.mark.skipif(
    not (ON_POSTGRES and ON_REDIS), reason="needs DATABASE_URL (PostgreSQL) and REDIS_URL"
)
PARALLEL = 50
HI = [{"role": "user", "content": "hi"}]


@dataclass
class Case:
    body: dict
    obeys: str = BoundObeyed.BOTH
    provider_field: str = OutputBoundField.MAX_TOKENS
    credits: Decimal = Decimal("100")
    policy: dict = field(default_factory=dict)
    overrun: bool = False  # the upstream ignores the bound: capped, unbilled, alerted


CASES = {
    # 32.00 spent against 0.50 before: both fields were forwarded, the hold used the smaller.
    "both fields, upstream obeys max_completion_tokens": Case(
        {"max_tokens": 1, "max_completion_tokens": 20_000},
        obeys=BoundObeyed.MAX_COMPLETION_TOKENS,
        provider_field=OutputBoundField.MAX_COMPLETION_TOKENS,
        policy={"daily_credit_limit": Decimal("0.50")},
    ),
    # 1.92 against 0.50 before: the hold covered the model's limit, no bound was sent.
    "no bound": Case({}, policy={"daily_credit_limit": Decimal("0.50")}),
    # 9.92 against 1.00 before: n=16 was forwarded, the hold covered one completion.
    "n=16": Case({"max_tokens": 20, "n": 16}, policy={"daily_credit_limit": Decimal("1.00")}),
    # The last line of defence: an upstream that ignores every bound.
    "upstream ignores the bound, key limit": Case(
        {"max_tokens": 1},
        obeys=BoundObeyed.NONE,
        policy={"daily_credit_limit": Decimal("0.50")},
        overrun=True,
    ),
    "upstream ignores the bound, small wallet": Case(
        {"max_tokens": 1}, obeys=BoundObeyed.NONE, credits=Decimal("0.20"), overrun=True
    ),
}


@pytest.fixture(params=CASES.values(), ids=CASES.keys())
def case(request, catalogue, upstream) -> Case:
    """The catalogue and the upstream as the case wants them, before any process reads them."""
    c = request.param
    Provider.objects.filter(id="demo").update(output_bound_field=c.provider_field)
    mark_catalog_changed()
    upstream.config.obeys_bound = c.obeys
    upstream.config.completion_tokens = 20_000  # 5 credits each at 2.50 EUR per 1M tokens
    upstream.config.latency_ms = 200  # every request in flight at once
    return c


@pytest.fixture
def two_gateways(case):
    gateways = start_shared_gateways()
    try:
        yield [g.wait_ready().api for g in gateways]
    finally:
        for g in gateways:
            g.stop()


async def _burst(apis: list[str], token: str, body: dict) -> list[int]:
    payload = {"model": "demo/echo-small", "messages": HI, **body}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=60) as client:
        replies = await asyncio.gather(
            *[
                client.post(apis[i % 2] + "/chat/completions", json=payload, headers=headers)
                for i in range(PARALLEL)
            ]
        )
    return [r.status_code for r in replies]


def test_parallel_requests_never_spend_past_a_key_limit_or_the_wallet(
    case: Case, upstream, two_gateways
):
    f = make_funded(email="burst@example.com", credits=case.credits, **case.policy)

    statuses = asyncio.run(_burst(two_gateways, f.token, case.body))

    assert 200 in statuses and set(statuses) <= {200, 402, 429}, statuses
    day = KeySpend.objects.get(key=f.key, period="day")
    if "daily_credit_limit" in case.policy:
        assert day.spent_micros <= credits_to_micros(case.policy["daily_credit_limit"])
    wallet = Wallet.objects.get(account=f.user)
    assert 0 <= wallet.balance_micros == ledger_sum(f.user)
    assert wallet.reserved_micros == 0 and day.reserved_micros == 0
    assert not Hold.objects.filter(account=f.user).exists()
    gens = Generation.objects.filter(account=f.user)
    assert day.spent_micros == sum(g.cost_micros for g in gens)
    unbilled = sum(g.unbilled_micros for g in gens)
    if case.overrun:
        # Charged up to what the key or wallet allowed; the rest is unbilled and reported.
        assert unbilled > 0
        incidents = UpstreamOverrun.objects.all()
        assert {i.provider for i in incidents} == {"demo"}
        assert len(incidents) == statuses.count(200)
    else:
        # The upstream obeyed the bound it was sent, which is the one held for.
        assert unbilled == 0
        assert not UpstreamOverrun.objects.exists()
    # Every upstream call carried one bound, in the provider's field.
    assert {tuple(r.bounds) for r in upstream.records} == {(case.provider_field,)}
