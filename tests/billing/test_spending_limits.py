"""Reservations make overspending impossible: balance, key limits, concurrency, orphans."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import httpx
from django.utils import timezone

from billing.ledger import ledger_sum
from billing.models import Generation, Hold, KeySpend, Wallet
from billing.money import credits_to_micros
from billing.spending import release_orphaned_holds, reserve_credits
from keys.models import ApiKey
from tests.conftest import needs_postgres
from tests.factories import make_funded

BODY = {
    "model": "demo/echo-small",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 10,
}


def post(gateway, token: str, body: dict = BODY) -> httpx.Response:
    return httpx.post(
        gateway.api + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )


def assert_books_balance(user) -> None:
    wallet = Wallet.objects.get(account=user)
    assert wallet.balance_micros == ledger_sum(user)
    assert wallet.balance_micros >= 0
    assert wallet.reserved_micros == 0
    assert not Hold.objects.filter(account=user).exists()
    assert all(s.reserved_micros == 0 for s in KeySpend.objects.filter(key__account=user))


def test_daily_limit_hit_is_429_with_retry_after_and_costs_nothing(gateway, catalogue):
    f = make_funded(email="daily@example.com", name="prod-api", daily_credit_limit=Decimal("0"))
    resp = post(gateway, f.token)
    assert resp.status_code == 429, resp.text
    error = resp.json()["error"]
    assert error["code"] == "key_daily_limit_exceeded"
    assert "prod-api" in error["message"] and "daily credit limit" in error["message"]
    assert 0 < int(resp.headers["Retry-After"]) <= 86400
    assert not Generation.objects.exists()
    assert_books_balance(f.user)


def test_monthly_limit_hit_is_429(gateway, catalogue):
    f = make_funded(email="monthly@example.com", monthly_credit_limit=Decimal("0.00"))
    resp = post(gateway, f.token)
    assert resp.status_code == 429
    assert resp.json()["error"]["code"] == "key_monthly_limit_exceeded"


def test_raising_a_limit_is_effective_on_the_next_request(gateway, catalogue):
    f = make_funded(email="bump@example.com", daily_credit_limit=Decimal("0"))
    assert post(gateway, f.token).status_code == 429
    ApiKey.objects.filter(pk=f.key.pk).update(daily_credit_limit=Decimal("5"))
    assert post(gateway, f.token).status_code == 200


def test_expired_key_has_its_own_code(gateway, catalogue):
    f = make_funded(email="exp@example.com")
    ApiKey.objects.filter(pk=f.key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    resp = post(gateway, f.token)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "key_expired"


def test_credits_and_key_endpoints_report_spend(gateway, catalogue):
    f = make_funded(email="watch@example.com", daily_credit_limit=Decimal("5"))
    assert post(gateway, f.token).status_code == 200
    headers = {"Authorization": f"Bearer {f.token}"}
    credits = httpx.get(gateway.api + "/credits", headers=headers).json()
    gen = Generation.objects.get()
    spent = Decimal(credits["spent_this_month"])
    assert spent == Decimal(gen.cost_micros) / 1_000_000
    assert Decimal(credits["balance"]) == Decimal(100) - spent
    key = httpx.get(gateway.api + "/key", headers=headers).json()
    assert key["name"] == "test-key"
    assert Decimal(key["daily"]["spent"]) == spent
    assert Decimal(key["daily"]["remaining"]) == Decimal(5) - spent
    assert key["monthly"]["limit"] is None


def test_every_authenticated_response_carries_the_balance(gateway, catalogue, funded):
    headers = {"Authorization": f"Bearer {funded.token}"}
    for path in ("/models", "/credits", "/key"):
        assert httpx.get(gateway.api + path, headers=headers).headers["X-Credit-Balance"]
    assert post(gateway, funded.token).headers["X-Credit-Balance"]


def test_head_on_models_costs_nothing(gateway, catalogue, funded):
    resp = httpx.head(gateway.api + "/models", headers={"Authorization": f"Bearer {funded.token}"})
    assert resp.status_code == 200
    assert Wallet.objects.get(account=funded.user).balance_micros == credits_to_micros(100)


def test_orphaned_holds_are_released_by_the_reaper(transactional_db):
    f = make_funded(email="orphan@example.com", daily_credit_limit=Decimal("1"))
    hold = reserve_credits(
        account_id=f.user.pk,
        key_id=f.key.pk,
        key_name=f.key.name,
        daily_limit=f.key.daily_credit_limit,
        monthly_limit=None,
        amount_micros=500_000,
    )
    assert Wallet.objects.get(account=f.user).reserved_micros == 500_000
    assert release_orphaned_holds() == 0  # too young to be an orphan
    Hold.objects.filter(pk=hold.hold_id).update(created_at=timezone.now() - timedelta(hours=1))
    assert release_orphaned_holds() == 1
    assert_books_balance(f.user)


async def _burst(gateway, token: str, n: int) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as client:
        replies = await asyncio.gather(
            *[
                client.post(
                    gateway.api + "/chat/completions",
                    json=BODY,
                    headers={"Authorization": f"Bearer {token}"},
                )
                for _ in range(n)
            ]
        )
    return [r.status_code for r in replies]


def _hold_size() -> int:
    # The worst case the gateway reserves for BODY on the catalogue fixture's prices.
    import json

    from billing.costs import Prices, worst_case_micros
    from routing.validation import parse_chat_request

    req = parse_chat_request(json.dumps(BODY).encode())
    prices = Prices(Decimal("1.00"), Decimal("2.00"), Decimal("0.25"), Decimal("0.50"))
    return worst_case_micros(req.prompt_token_bound, 10, prices)


@needs_postgres
def test_parallel_requests_never_overspend_the_balance(gateway, catalogue, upstream):
    hold = _hold_size()
    f = make_funded(email="race@example.com", credits=Decimal(hold * 3 + hold // 2) / 1_000_000)
    # Slow upstream: every request is in flight at once, so only reservations decide.
    upstream.config.latency_ms = 400
    statuses = asyncio.run(_burst(gateway, f.token, 12))
    assert statuses.count(200) == 3
    assert statuses.count(402) == 9
    assert_books_balance(f.user)
    spent = sum(g.cost_micros for g in Generation.objects.filter(account=f.user))
    assert spent <= credits_to_micros(Decimal(hold * 3 + hold // 2) / 1_000_000)


@needs_postgres
def test_parallel_requests_never_exceed_a_key_limit(gateway, catalogue, upstream):
    hold = _hold_size()
    limit = (Decimal(hold * 2 + hold // 2) / 1_000_000).quantize(Decimal("0.01"))
    f = make_funded(email="keyrace@example.com", daily_credit_limit=max(limit, Decimal("0.01")))
    per_limit = credits_to_micros(f.key.daily_credit_limit) // hold
    upstream.config.latency_ms = 400
    statuses = asyncio.run(_burst(gateway, f.token, 12))
    assert statuses.count(200) == per_limit
    assert statuses.count(429) == 12 - per_limit
    day = KeySpend.objects.get(key=f.key, period="day")
    assert day.spent_micros <= credits_to_micros(f.key.daily_credit_limit)
    assert_books_balance(f.user)


def test_cached_prompt_tokens_are_charged_at_the_cached_rate(gateway, catalogue, funded, upstream):
    upstream.config.cached_tokens = 4
    assert post(gateway, funded.token).status_code == 200
    gen = Generation.objects.get()
    assert gen.cached_prompt_tokens == 4
    # prompt 1.00 / cached 0.25 / completion 2.00 EUR per 1M, fee 0.50 on every token.
    eur = (
        Decimal(gen.prompt_tokens - 4) * Decimal("1.50")
        + Decimal(4) * Decimal("0.75")
        + Decimal(gen.completion_tokens) * Decimal("2.50")
    ) / 1_000_000
    assert gen.cost_micros == int((eur * 100 * 1_000_000).to_integral_value())


def test_models_list_shows_only_what_the_key_may_use(gateway, catalogue):
    from tests.conftest import add_model, add_offering

    add_offering(add_model("demo/other"), catalogue.provider)
    f = make_funded(email="narrow@example.com", models=["demo/other"])
    headers = {"Authorization": f"Bearer {f.token}"}
    listed = httpx.get(gateway.api + "/models", headers=headers).json()["data"]
    assert [m["id"] for m in listed] == ["demo/other"]
    assert httpx.get(gateway.api + "/models/demo/echo-small", headers=headers).status_code == 404
