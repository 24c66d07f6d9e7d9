"""The output bound the hold covers is the bound the upstream receives; what lies beyond it
(an upstream that ignores it) is never charged past a key's limit or the wallet, and is
reported to the operator. With several processes: tests/billing/test_bound_two_processes.py.
"""

import logging
from decimal import Decimal

import httpx
import pytest

from billing.costs import Usage
from billing.ledger import ledger_sum
from billing.models import Generation, Hold, KeySpend, Wallet
from billing.money import credits_to_micros
from catalog.models import OutputBoundField, Provider, WireFormat
from catalog.snapshot import mark_catalog_changed
from devtools.demo_upstream import BoundObeyed
from routing.models import UpstreamOverrun
from tests.factories import make_funded

HI = [{"role": "user", "content": "hi"}]


def post(gateway, token: str, **body: object) -> httpx.Response:
    return httpx.post(
        gateway.api + "/chat/completions",
        json={"model": "demo/echo-small", "messages": HI, **body},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def set_provider(**fields: object) -> None:
    Provider.objects.filter(id="demo").update(**fields)
    mark_catalog_changed()


def assert_books_exact(user) -> None:
    wallet = Wallet.objects.get(account=user)
    assert wallet.balance_micros == ledger_sum(user) >= 0
    assert wallet.reserved_micros == 0
    assert not Hold.objects.filter(account=user).exists()


def test_the_upstream_receives_one_bound_the_smaller_of_both_fields(
    gateway, catalogue, funded, upstream
):
    resp = post(gateway, funded.token, max_tokens=1, max_completion_tokens=20000)
    assert resp.status_code == 200, resp.text
    assert upstream.records[-1].bounds == {"max_tokens": 1}
    assert Generation.objects.get().completion_tokens == 1


def test_the_bound_goes_in_the_field_the_provider_obeys(gateway, catalogue, funded, upstream):
    set_provider(output_bound_field=OutputBoundField.MAX_COMPLETION_TOKENS)
    upstream.config.obeys_bound = BoundObeyed.MAX_COMPLETION_TOKENS
    upstream.config.completion_tokens = 500
    assert post(gateway, funded.token, max_tokens=3).status_code == 200
    assert upstream.records[-1].bounds == {"max_completion_tokens": 3}
    assert Generation.objects.get().completion_tokens == 3


def test_a_request_without_a_bound_sends_the_model_output_limit_it_holds_for(
    gateway, catalogue, funded, upstream
):
    upstream.config.completion_tokens = 5000  # the model's limit is 1000
    assert post(gateway, funded.token).status_code == 200
    assert upstream.records[-1].bounds == {"max_tokens": 1000}
    gen = Generation.objects.get()
    assert (gen.completion_tokens, gen.unbilled_micros) == (1000, 0)


def test_n_multiplies_the_hold(gateway, catalogue, upstream):
    upstream.config.completion_tokens = 100
    # 0.30 credits: one completion of 100 tokens holds about 0.03, sixteen about 0.40.
    f = make_funded(email="n@example.com", daily_credit_limit=Decimal("0.30"))
    refused = post(gateway, f.token, max_tokens=100, n=16)
    assert refused.status_code == 429, refused.text
    assert "n=16" in refused.json()["error"]["message"]
    assert not Generation.objects.exists()

    served = post(gateway, f.token, max_tokens=100, n=4)
    assert served.status_code == 200
    assert upstream.records[-1].n == 4
    assert len(served.json()["choices"]) == 4
    gen = Generation.objects.get()
    assert (gen.completion_tokens, gen.unbilled_micros) == (400, 0)
    assert KeySpend.objects.get(key=f.key, period="day").spent_micros == gen.cost_micros
    assert_books_exact(f.user)


def test_n_above_one_is_a_400_where_only_messages_serves_the_model(
    gateway, catalogue, funded, upstream
):
    set_provider(wire_format=WireFormat.ANTHROPIC)
    resp = post(gateway, funded.token, max_tokens=10, n=2)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "n")
    assert not upstream.records
    assert post(gateway, funded.token, max_tokens=10, n=1).status_code == 200


def test_an_upstream_past_its_bound_is_charged_only_up_to_the_key_limit_and_alerted(
    gateway, catalogue, upstream, caplog
):
    upstream.config.obeys_bound = BoundObeyed.NONE
    upstream.config.completion_tokens = 20_000  # 5 credits at 2.50 EUR per 1M tokens
    f = make_funded(email="overrun@example.com", daily_credit_limit=Decimal("0.50"))
    with caplog.at_level(logging.ERROR, logger="routing.overruns"):
        resp = post(gateway, f.token, max_tokens=20)
    assert resp.status_code == 200
    gen = Generation.objects.get()
    limit = credits_to_micros(Decimal("0.50"))
    assert gen.cost_micros == limit  # all the key had left, and no more
    assert gen.unbilled_micros > 0
    assert KeySpend.objects.get(key=f.key, period="day").spent_micros == limit
    assert_books_exact(f.user)

    incident = UpstreamOverrun.objects.get()
    assert (incident.provider, incident.model, incident.generation_id) == (
        "demo",
        "demo/echo-small",
        gen.id,
    )
    assert (incident.bound_tokens, incident.completion_tokens) == (20, 20_000)
    assert incident.unbilled_micros == gen.unbilled_micros
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "provider=demo" in logged and gen.id in logged and "over=19980" in logged
    assert "hi" not in logged.split()  # metadata only, never the prompt


def test_an_upstream_past_its_bound_never_takes_a_wallet_below_zero(gateway, catalogue, upstream):
    upstream.config.obeys_bound = BoundObeyed.NONE
    upstream.config.completion_tokens = 20_000
    f = make_funded(email="wallet@example.com", credits=Decimal("0.20"))
    assert post(gateway, f.token, max_tokens=20).status_code == 200
    gen = Generation.objects.get()
    assert gen.cost_micros == credits_to_micros(Decimal("0.20"))
    assert Wallet.objects.get(account=f.user).balance_micros == 0
    assert UpstreamOverrun.objects.get().unbilled_micros == gen.unbilled_micros > 0
    assert_books_exact(f.user)


def test_an_upstream_within_its_bound_raises_no_alert(gateway, catalogue, funded, upstream):
    assert post(gateway, funded.token, max_tokens=20).status_code == 200
    assert not UpstreamOverrun.objects.exists()
    assert Generation.objects.get().unbilled_micros == 0


@pytest.mark.parametrize(
    "usage, output",
    [
        # OpenAI: reasoning inside completion_tokens.
        ({"prompt_tokens": 10, "completion_tokens": 50, "total_tokens": 60,
          "completion_tokens_details": {"reasoning_tokens": 40}}, 50),
        # Reported beside the completion, visible in the total.
        ({"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 60,
          "completion_tokens_details": {"reasoning_tokens": 40}}, 50),
        # Reported beside the completion, with no total.
        ({"prompt_tokens": 10, "completion_tokens": 10,
          "completion_tokens_details": {"reasoning_tokens": 40}}, 50),
    ],
)  # fmt: skip
def test_reasoning_tokens_are_billed_as_output(usage: dict, output: int):
    assert Usage.from_openai(usage).completion_tokens == output
