"""The first completion, end to end, judged by the official OpenAI SDK against a live server."""

from decimal import Decimal

import pytest
from openai import OpenAI

from billing.ledger import ledger_sum
from billing.models import Generation, Hold, Wallet
from billing.money import credits_to_micros


@pytest.fixture
def client(gateway, funded, catalogue) -> OpenAI:
    return OpenAI(base_url=gateway.api, api_key=funded.token, max_retries=0)


def test_non_streaming_completion_carries_the_lowrouter_block(client, funded, upstream):
    resp = client.chat.completions.create(
        model="demo/echo-small", messages=[{"role": "user", "content": "hello there"}]
    )
    assert resp.model == "demo/echo-small"
    assert resp.choices[0].message.content
    block = resp.model_extra["lowrouter"]
    assert block["provider"] == "demo"
    assert block["region"] == "local"
    gen = Generation.objects.get(pk=block["generation_id"])
    assert gen.status == "ok"
    assert gen.prompt_tokens == resp.usage.prompt_tokens
    assert gen.completion_tokens == resp.usage.completion_tokens
    assert gen.cost_micros > 0
    assert upstream.records[-1].model == "demo-echo"


def test_streaming_completion_works_with_the_naive_sdk_loop(client, funded):
    stream = client.chat.completions.create(
        model="demo/echo-small",
        messages=[{"role": "user", "content": "Count to 5 slowly"}],
        stream=True,
    )
    text, summaries = [], []
    for chunk in stream:
        delta = chunk.choices[0].delta.content
        if delta:
            text.append(delta)
        if chunk.model_extra and "lowrouter" in chunk.model_extra:
            summaries.append(chunk.model_extra["lowrouter"])
        assert chunk.model == "demo/echo-small"
    assert "".join(text)
    assert len(summaries) == 1
    gen = Generation.objects.get(pk=summaries[0]["generation_id"])
    assert gen.stream is True
    assert gen.completion_tokens > 0
    assert gen.cost_micros > 0


def test_streamed_request_is_billed_like_a_plain_one(client, funded):
    messages = [{"role": "user", "content": "same prompt for both"}]
    plain = client.chat.completions.create(model="demo/echo-small", messages=messages)
    for _ in client.chat.completions.create(
        model="demo/echo-small", messages=messages, stream=True
    ):
        pass
    plain_gen, streamed_gen = (
        Generation.objects.get(pk=plain.model_extra["lowrouter"]["generation_id"]),
        Generation.objects.exclude(pk=plain.model_extra["lowrouter"]["generation_id"]).get(),
    )
    assert streamed_gen.total_tokens == plain_gen.total_tokens
    assert streamed_gen.cost_micros == plain_gen.cost_micros


def test_balance_equals_ledger_and_no_hold_remains(client, funded):
    for _ in range(3):
        client.chat.completions.create(
            model="demo/echo-small", messages=[{"role": "user", "content": "hi"}]
        )
    wallet = Wallet.objects.get(account=funded.user)
    assert wallet.balance_micros == ledger_sum(funded.user)
    assert wallet.reserved_micros == 0
    assert not Hold.objects.exists()
    spent = sum(g.cost_micros for g in Generation.objects.all())
    assert wallet.balance_micros == credits_to_micros(Decimal("100")) - spent


def test_cost_follows_the_prices_in_force(client, funded):
    resp = client.chat.completions.create(
        model="demo/echo-small", messages=[{"role": "user", "content": "price check"}]
    )
    gen = Generation.objects.get(pk=resp.model_extra["lowrouter"]["generation_id"])
    # Offering: prompt 1.00, cached 0.25, completion 2.00 EUR/1M; platform fee 0.50 EUR/1M.
    expected_eur = (
        Decimal(gen.prompt_tokens) * Decimal("1.50")
        + Decimal(gen.completion_tokens) * Decimal("2.50")
    ) / Decimal(1_000_000)
    assert gen.cost_micros == int((expected_eur * 100 * 1_000_000).to_integral_value())
    assert gen.prompt_price_eur == Decimal("1.00")
    assert gen.platform_fee_eur == Decimal("0.50")
