"""X-Credit-Balance: on every authenticated answer of the chat path, refusals included, with
the precision of GET /credits, so that successive headers reconcile with what was charged."""

from decimal import Decimal

import httpx

from billing.models import Generation, Wallet
from billing.money import micros_to_credits
from catalog.snapshot import mark_catalog_changed
from tests.conftest import add_model
from tests.factories import make_funded

BODY = {"model": "demo/echo-small", "messages": [{"role": "user", "content": "hi"}]}


def post(gateway, token: str, **body: object) -> httpx.Response:
    return httpx.post(
        gateway.api + "/chat/completions",
        json={**BODY, **body},
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )


def balance_now(user) -> Decimal:
    return micros_to_credits(Wallet.objects.get(account=user).balance_micros)


def test_two_headers_differ_by_exactly_what_the_request_between_them_cost(gateway, catalogue):
    f = make_funded(email="precise@example.com", credits=Decimal("1"))
    before = Decimal(post(gateway, f.token, max_tokens=5).headers["X-Credit-Balance"])
    after = Decimal(post(gateway, f.token, max_tokens=5).headers["X-Credit-Balance"])
    second = Generation.objects.order_by("-created_at").first()
    assert 0 < second.cost_micros < 10_000  # less than 0.01 credit
    assert before - after == micros_to_credits(second.cost_micros)
    credits = httpx.get(gateway.api + "/credits", headers={"Authorization": f"Bearer {f.token}"})
    assert credits.headers["X-Credit-Balance"] == credits.json()["balance"] == str(after)


def test_refusals_carry_the_balance_too(gateway, catalogue):
    f = make_funded(
        email="refused@example.com",
        credits=Decimal("0.05"),
        daily_credit_limit=Decimal("0.001"),
        models=["demo/echo-small"],
    )
    over_limit = post(gateway, f.token, max_tokens=5)
    assert over_limit.status_code == 429
    assert over_limit.headers["X-Credit-Balance"] == "0.050000" == str(balance_now(f.user))

    no_credit = make_funded(email="broke@example.com", credits=Decimal("0.000001"))
    refused = post(gateway, no_credit.token, max_tokens=5)
    assert refused.status_code == 402
    assert refused.headers["X-Credit-Balance"] == "0.000001"

    add_model("demo/other")
    mark_catalog_changed()
    forbidden = post(gateway, f.token, model="demo/other")
    assert forbidden.status_code == 403
    assert forbidden.headers["X-Credit-Balance"] == "0.050000"


def test_an_unauthenticated_refusal_tells_no_balance(gateway, catalogue):
    resp = httpx.post(
        gateway.api + "/chat/completions",
        json=BODY,
        headers={"Authorization": "Bearer lr-sk-unknown"},
        timeout=15,
    )
    assert resp.status_code == 401
    assert "X-Credit-Balance" not in resp.headers
