"""A stream that ends without the upstream's usage block (the client left, the upstream cut the
stream or went silent, or never sent one) is billed for what was relayed: the estimated prompt
and one token per piece of output the client received, marked ``usage_source: "estimated"``,
with the eco estimate on the same counts. And a client that leaves gets its upstream request
closed within a second."""

import json
from math import ceil

import httpx
import pytest
from django.test import override_settings

from billing.costs import Prices, Usage, usage_cost_micros
from billing.models import Generation, UsageSource
from routing.usage_estimate import estimate_usage, output_pieces
from routing.validation import parse_chat_request
from tests.reliability.conftest import assert_books_exact, settled, wait_until

PROMPT = "Count slowly from one to four hundred, please."


def _body(**extra: object) -> dict:
    return {
        "model": "demo/echo-small",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 500,
        "stream": True,
        **extra,
    }


def _prompt_estimate() -> int:
    return ceil(len(PROMPT.encode()) / 6)


def _charged_as(gen: Generation, prompt: int, completion: int) -> int:
    prices = Prices(
        prompt=gen.prompt_price_eur,
        completion=gen.completion_price_eur,
        cached_prompt=gen.cached_prompt_price_eur,
        platform_fee=gen.platform_fee_eur,
    )
    return usage_cost_micros(Usage(prompt, completion), prices)


def _content_deltas(lines: list[str]) -> int:
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    return sum(output_pieces(c.get("choices") or []) for c in chunks if "error" not in c)


def _post(gateway, funded) -> httpx.Response:
    """The whole stream, read to its end."""
    return httpx.post(
        gateway.api + "/chat/completions",
        json=_body(),
        headers={"Authorization": f"Bearer {funded.token}"},
        timeout=30,
    )


def _leave_after(gateway, funded, deltas: int) -> int:
    """Stream a long answer, read ``deltas`` pieces of content, hang up; the pieces read."""
    read = 0
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            gateway.api + "/chat/completions",
            json=_body(),
            headers={"Authorization": f"Bearer {funded.token}"},
        ) as resp,
    ):
        assert resp.status_code == 200
        for line in resp.iter_lines():
            read += _content_deltas([line])
            if read >= deltas:
                break
    return read


def test_a_client_that_hangs_up_mid_stream_pays_for_the_prompt_and_what_it_received(
    gateway, funded, catalogue, upstream
):
    upstream.config.chunk_interval_ms, upstream.config.completion_tokens = 30, 400
    read = _leave_after(gateway, funded, 20)
    record = upstream.wait_for_outcome("cancelled")
    wait_until(settled(funded.user, 1))
    assert_books_exact(funded.user, generations=1)

    gen = Generation.objects.get()
    assert gen.error_code == "client_disconnected"
    # At least what the client read, never more than the upstream produced before it was closed.
    assert read <= gen.completion_tokens <= record.content_events < 400
    assert gen.prompt_tokens == _prompt_estimate()
    assert gen.cost_micros == _charged_as(gen, gen.prompt_tokens, gen.completion_tokens) > 0
    assert gen.usage_source == UsageSource.ESTIMATED
    # The eco estimate is computed on the same counts.
    assert gen.energy_wh is not None
    assert gen.eco_inputs["completion_tokens"] == gen.completion_tokens
    assert gen.eco_inputs["prompt_tokens"] == gen.prompt_tokens

    record_api = httpx.get(
        f"{gateway.api}/generation/{gen.id}",
        headers={"Authorization": f"Bearer {funded.token}"},
        timeout=10,
    ).json()
    assert record_api["usage_source"] == "estimated"
    assert record_api["completion_tokens"] == gen.completion_tokens


def test_the_upstream_request_is_closed_within_a_second_of_the_client_leaving(
    gateway, funded, catalogue, upstream
):
    upstream.config.chunk_interval_ms, upstream.config.completion_tokens = 30, 400
    _leave_after(gateway, funded, 5)
    # Polled from the moment the client's connection is closed, for at most one second: the
    # fake upstream records "cancelled" when its side of the connection goes away.
    record = upstream.wait_for_outcome("cancelled", timeout=1.0)
    assert record.content_events < 400
    wait_until(settled(funded.user, 1))


@pytest.mark.parametrize("fault", ["cut_stream", "hang_stream"])
def test_a_stream_the_upstream_breaks_off_is_billed_for_the_pieces_relayed(
    gateway, funded, catalogue, upstream, fault
):
    upstream.config.fault, upstream.config.fault_after_chunks = fault, 3
    with override_settings(LOWROUTER_UPSTREAM_IDLE_TIMEOUT=0.5):
        resp = _post(gateway, funded)
    assert "upstream_stream_failed" in resp.text and "[DONE]" not in resp.text
    assert _content_deltas(resp.text.splitlines()) == 3
    assert_books_exact(funded.user, generations=1)
    gen = Generation.objects.get()
    assert gen.status == "upstream_error"
    assert (gen.prompt_tokens, gen.completion_tokens) == (_prompt_estimate(), 3)
    assert gen.cost_micros == _charged_as(gen, _prompt_estimate(), 3) > 0
    assert gen.usage_source == UsageSource.ESTIMATED


def test_a_finished_stream_without_a_usage_block_is_billed_by_the_count(
    gateway, funded, catalogue, upstream
):
    upstream.config.stream_usage, upstream.config.completion_tokens = False, 12
    resp = _post(gateway, funded)
    assert resp.text.endswith("data: [DONE]\n\n")
    assert_books_exact(funded.user, generations=1)
    gen = Generation.objects.get()
    assert gen.status == "ok"
    assert (gen.prompt_tokens, gen.completion_tokens) == (_prompt_estimate(), 12)
    assert gen.cost_micros == _charged_as(gen, _prompt_estimate(), 12)
    assert gen.usage_source == UsageSource.ESTIMATED


def test_a_stream_with_a_usage_block_is_billed_as_reported(gateway, funded, catalogue, upstream):
    resp = _post(gateway, funded)
    assert resp.text.endswith("data: [DONE]\n\n")
    gen = Generation.objects.get()
    assert gen.usage_source == UsageSource.REPORTED
    # The demo upstream's own count: one token per word plus four for the message's framing.
    assert (gen.prompt_tokens, gen.completion_tokens) == (len(PROMPT.split()) + 4, 12)


# --- The estimator itself ------------------------------------------------------------------


def test_reasoning_and_tool_call_deltas_count_as_delivered_output():
    choices = [
        {"index": 0, "delta": {"reasoning_content": "Let me think"}},
        {"index": 1, "delta": {"content": "Hi", "reasoning": "so"}},
        {
            "index": 2,
            "delta": {
                "tool_calls": [
                    {"index": 0, "function": {"name": "get_weather", "arguments": ""}},
                    {"index": 1, "function": {"arguments": '{"city":'}},
                    {"index": 2, "function": {"arguments": ""}},
                ]
            },
        },
    ]
    assert output_pieces(choices) == 1 + 2 + 2


def test_empty_deltas_and_role_chunks_count_nothing():
    choices = [
        {"index": 0, "delta": {"role": "assistant", "content": ""}},
        {"index": 1, "delta": {}},
        {"index": 2, "delta": {"content": None, "tool_calls": None}},
        "not a choice",
    ]
    assert output_pieces(choices) == 0


def test_nothing_relayed_is_estimated_at_nothing():
    req = parse_chat_request(json.dumps(_body()).encode())
    assert estimate_usage(req, 0) == Usage()


def test_the_prompt_estimate_counts_text_and_tools_but_not_images():
    image = "data:image/png;base64," + "A" * 60_000
    body = _body(
        messages=[
            {"role": "system", "content": "s" * 60},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "é" * 30},  # 60 bytes of UTF-8
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f" * 6}}],
            },
        ],
        tools=[{"type": "function", "function": {"name": "f" * 6}}],
    )
    req = parse_chat_request(json.dumps(body).encode())
    tools_bytes = len(json.dumps(body["tools"], separators=(",", ":")))
    expected = ceil((60 + 60 + 6 + tools_bytes) / 6)
    assert estimate_usage(req, 2) == Usage(prompt_tokens=expected, completion_tokens=2)
    # Far below the reservation's upper bound, which counts every byte and each image.
    assert expected * 6 < req.prompt_token_bound
