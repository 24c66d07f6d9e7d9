"""Anthropic's Messages API in front of the gateway (``/api/v1/anthropic/v1/messages``).

The translation both ways as pure functions, then the official ``anthropic`` SDK against a live
gateway: plain and streamed messages billed like any other request, errors in Messages' shape,
both ways of giving the key, and no prompt text kept.
"""

import asyncio
import json
import logging
from collections.abc import Iterator
from decimal import Decimal

import anthropic
import httpx
import pytest
from django.test import AsyncClient

from billing.ledger import get_wallet, ledger_sum
from billing.models import Generation, LedgerEntry, LedgerKind
from routing.anthropic_inbound import StreamTranslator, to_chat_request, to_message
from routing.errors import ApiError
from tests.conftest import make_funded
from tests.reliability.conftest import (  # noqa: F401 (canary is a fixture)
    assert_books_exact,
    canary,
    settled,
    wait_until,
)
from tests.routing.test_anthropic_adapter import DEMO_TEXT, anthropic_catalogue  # noqa: F401
from tests.routing.test_anthropic_adapter import MODEL as ANTHROPIC_MODEL


def _events(raw: list[bytes]) -> list[tuple[str, dict]]:
    out = []
    for block in b"".join(raw).split(b"\n\n"):
        if block:
            head, data = block.split(b"\n", 1)
            out.append((head.removeprefix(b"event: ").decode(), json.loads(data[6:])))
    return out


# --- Translation ---------------------------------------------------------------------------


def test_a_messages_request_becomes_a_chat_request():
    chat = to_chat_request(
        {
            "model": "anthropic/claude-sonnet-4-5",
            "max_tokens": 300,
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "...", "signature": "s"},
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"c": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "tu_1", "content": "12 C"},
                        {"type": "text", "text": "And this?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "iVB"},
                        },
                    ],
                },
            ],
            "stop_sequences": ["END"],
            "temperature": 0.2,
            "top_k": 5,
            "tools": [{"name": "weather", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "metadata": {"user_id": "u-42"},
            "stream": True,
        }
    )
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "tu_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"c":1}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "tu_1", "content": "12 C"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVB"}},
            ],
        },
    ]
    assert chat["max_tokens"] == 300 and chat["stop"] == ["END"] and chat["temperature"] == 0.2
    assert "top_k" not in chat  # no chat completion equivalent
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "weather", "parameters": {"type": "object"}, "description": "d"},
        }
    ]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["user"] == "u-42"
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}


def _body(**over: object) -> dict:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    return {k: v for k, v in {**body, **over}.items() if v is not None}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (_body(max_tokens=None), "max_tokens"),
        (_body(max_tokens=0), "max_tokens"),
        (_body(max_tokens=True), "max_tokens"),
        (_body(messages=[]), "messages"),
        (_body(messages=[{"role": "system", "content": "x"}]), "messages[0].role"),
        (
            _body(messages=[{"role": "user", "content": [{"type": "document"}]}]),
            "messages[0].content[0]",
        ),
        (_body(tools=[{"type": "web_search_20250305", "name": "w"}]), "tools[0]"),
        (_body(model=7), "model"),
        (_body(stream="yes"), "stream"),
        (_body(tool_choice={"type": "tool"}), "tool_choice"),
    ],
)
def test_a_bad_messages_request_is_refused_naming_the_field(body, param):
    with pytest.raises(ApiError) as refused:
        to_chat_request(body)
    assert refused.value.status == 400 and refused.value.param == param


def test_a_completion_becomes_a_message():
    message = to_message(
        {
            "id": "chatcmpl-1",
            "model": "demo/echo-small",
            "choices": [
                {
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": "Let me look.",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                            }
                        ],
                    },
                }
            ],
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 7,
                "prompt_tokens_details": {"cached_tokens": 60},
            },
            "lowrouter": {"generation_id": "gen_1", "provider": "demo", "region": "local"},
        }
    )
    assert message["id"] == "msg_gen_1" and message["type"] == "message"
    assert message["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 40,
        "output_tokens": 7,
        "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 0,
    }
    assert message["lowrouter"]["provider"] == "demo"


def test_stream_chunks_become_messages_events_in_order():
    t = StreamTranslator("demo/echo-small", "msg_gen_1")
    out = t.chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]})
    out += t.chunk({"choices": [{"index": 0, "delta": {"content": "lo"}}]})
    call = {"index": 0, "id": "call_1", "function": {"name": "weather", "arguments": '{"ci'}}
    out += t.chunk({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    more = {"index": 0, "function": {"arguments": 'ty": "Paris"}'}}
    out += t.chunk({"choices": [{"index": 0, "delta": {"tool_calls": [more]}}]})
    out += t.chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    usage = {"prompt_tokens": 9, "completion_tokens": 4}
    out += t.chunk({"choices": [], "usage": usage, "lowrouter": {"generation_id": "gen_1"}})
    out += t.end()
    events = _events(out)
    assert [kind for kind, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(kind == data["type"] for kind, data in events)
    assert events[0][1]["message"]["id"] == "msg_gen_1"
    assert events[5][1]["content_block"] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "weather",
        "input": {},
    }
    partial = "".join(d["delta"]["partial_json"] for k, d in events[6:8])
    assert json.loads(partial) == {"city": "Paris"}
    delta = events[9][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] == 4 and delta["usage"]["input_tokens"] == 9
    assert delta["lowrouter"] == {"generation_id": "gen_1"}


# --- Through a live gateway with the Anthropic SDK -----------------------------------------


@pytest.fixture
def quiet_sdk() -> Iterator[None]:
    """The SDK's own debug log quotes each request it sends: that is the client's log, not
    the gateway's, and it would trip the canary."""
    logger = logging.getLogger("anthropic")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.fixture
def client(gateway, funded, catalogue, upstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.api + "/anthropic", api_key=funded.token, max_retries=0
    )


def test_the_anthropic_sdk_gets_a_billed_message(client, funded, quiet_sdk, canary):  # noqa: F811
    message = client.messages.create(
        model="demo/echo-small",
        max_tokens=50,
        system="Answer briefly.",
        messages=[{"role": "user", "content": f"Say hello. {canary}"}],
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "demo/echo-small"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    lowrouter = message.model_extra["lowrouter"]
    assert lowrouter["provider"] == "demo" and lowrouter["region"] == "local"
    generation = Generation.objects.get(id=lowrouter["generation_id"])
    assert message.id == f"msg_{generation.id}"
    assert generation.completion_tokens == message.usage.output_tokens
    entry = LedgerEntry.objects.get(generation=generation, kind=LedgerKind.USAGE)
    assert -entry.amount_micros == generation.cost_micros > 0
    assert get_wallet(funded.user).balance_micros == ledger_sum(funded.user)


def test_the_anthropic_sdk_streams_a_billed_message(client, funded, quiet_sdk, canary):  # noqa: F811
    plain = client.messages.create(
        model="demo/echo-small",
        max_tokens=20,
        messages=[{"role": "user", "content": f"Count. {canary}"}],
    )
    with client.messages.stream(
        model="demo/echo-small",
        max_tokens=20,
        messages=[{"role": "user", "content": f"Count. {canary}"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == plain.content[0].text == final.content[0].text
    assert final.stop_reason == plain.stop_reason
    assert final.usage.output_tokens == plain.usage.output_tokens
    generation = Generation.objects.get(id=final.id.removeprefix("msg_"))
    assert generation.stream and generation.completion_tokens == final.usage.output_tokens
    assert get_wallet(funded.user).balance_micros == ledger_sum(funded.user)


def test_errors_come_in_the_messages_shape(gateway, client, catalogue, upstream):
    bad_key = anthropic.Anthropic(
        base_url=gateway.api + "/anthropic", api_key="lr-sk-nope", max_retries=0
    )
    with pytest.raises(anthropic.AuthenticationError) as denied:
        bad_key.messages.create(
            model="demo/echo-small", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert denied.value.body["error"]["type"] == "authentication_error"

    with pytest.raises(anthropic.NotFoundError) as unknown:
        client.messages.create(
            model="nobody/nothing", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert unknown.value.body["type"] == "error"

    poor = make_funded("poor@example.com", credits=Decimal("0"))
    broke = anthropic.Anthropic(
        base_url=gateway.api + "/anthropic", api_key=poor.token, max_retries=0
    )
    with pytest.raises(anthropic.APIStatusError) as refused:
        broke.messages.create(
            model="demo/echo-small", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.status_code == 402
    assert refused.value.body["error"]["type"] == "billing_error"

    # What the SDK would not send: checked by the gateway all the same.
    raw = httpx.post(
        gateway.api + "/anthropic/v1/messages",
        content=b'{"model": "demo/echo-small", "messages": [{"role": "user", "content": "x"}]}',
        headers={"x-api-key": "lr-sk-nope", "Content-Type": "application/json"},
    )
    assert raw.status_code == 400
    assert raw.json()["error"]["type"] == "invalid_request_error"
    assert raw.headers["request-id"] == raw.headers["X-Request-ID"]
    broken = httpx.post(gateway.api + "/anthropic/v1/messages", content=b"{nope")
    assert broken.status_code == 400 and broken.json()["type"] == "error"


def test_a_bearer_token_works_as_well_as_x_api_key(gateway, funded, catalogue, upstream):
    resp = httpx.post(
        gateway.api + "/anthropic/v1/messages",
        json={
            "model": "demo/echo-small",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers={"Authorization": f"Bearer {funded.token}", "anthropic-version": "2023-06-01"},
        timeout=30,
    )
    assert resp.status_code == 200 and resp.json()["type"] == "message"
    assert resp.headers["X-LowRouter-Provider"] == "demo"


def test_other_methods_and_the_django_path_answer_in_the_messages_shape(
    gateway, funded, catalogue, upstream
):
    resp = httpx.get(gateway.api + "/anthropic/v1/messages")
    assert resp.status_code == 405 and resp.headers["Allow"] == "POST"
    assert resp.json()["error"]["type"] == "invalid_request_error"
    # POST is served only by the ASGI endpoint ahead of Django: Django itself has no second
    # way in to the gateway, and answers any request that reaches it there with the 405.

    async def post() -> object:
        return await AsyncClient().post(
            "/api/v1/anthropic/v1/messages",
            {"model": "demo/echo-small", "max_tokens": 5, "messages": []},
            content_type="application/json",
            headers={"x-api-key": funded.token},
        )

    answer = asyncio.run(post())
    assert answer.status_code == 405
    assert json.loads(answer.content)["type"] == "error"


def test_a_stream_cut_midway_ends_with_an_error_event(client, funded, upstream):
    upstream.config.fault, upstream.config.fault_after_chunks = "cut_stream", 3
    with (
        pytest.raises(anthropic.APIStatusError) as failed,
        client.messages.stream(
            model="demo/echo-small",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
        ) as stream,
    ):
        "".join(stream.text_stream)
    assert failed.value.body["error"]["code"] == "upstream_stream_failed"
    wait_until(settled(funded.user, 1))
    assert_books_exact(funded.user, generations=1)
    assert Generation.objects.get().cost_micros == 0


def test_a_client_leaving_a_stream_cancels_the_upstream_and_settles(
    gateway, funded, catalogue, upstream
):
    upstream.config.chunk_interval_ms, upstream.config.completion_tokens = 50, 200
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST",
            gateway.api + "/anthropic/v1/messages",
            json={
                "model": "demo/echo-small",
                "max_tokens": 500,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={"x-api-key": funded.token},
        ) as resp,
    ):
        lines = resp.iter_lines()
        seen = [next(lines) for _ in range(8)]
        assert "event: content_block_delta" in seen
    upstream.wait_for_outcome("cancelled")
    wait_until(settled(funded.user, 1))
    assert_books_exact(funded.user, generations=1)
    assert Generation.objects.get().error_code == "client_disconnected"


def test_messages_in_and_messages_out_to_an_anthropic_provider(
    gateway,
    funded,
    anthropic_catalogue,  # noqa: F811 (a fixture)
    upstream,
    quiet_sdk,
):
    """Both translations composed: the SDK speaks Messages to the gateway, the gateway speaks
    Messages to an Anthropic-format upstream, and the cache reads survive the round trip."""
    upstream.config.cached_tokens = 2
    client = anthropic.Anthropic(
        base_url=gateway.api + "/anthropic", api_key=funded.token, max_retries=0
    )
    ask = {
        "model": ANTHROPIC_MODEL,
        "max_tokens": 100,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}],
    }
    message = client.messages.create(**ask)
    assert message.content[0].text == DEMO_TEXT and message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (5, 2)
    assert upstream.records[-1].path == "/v1/messages"
    with client.messages.stream(**ask) as stream:
        assert "".join(stream.text_stream) == DEMO_TEXT
        final = stream.get_final_message()
    assert final.usage.output_tokens == message.usage.output_tokens == 12
    assert final.usage.cache_read_input_tokens == 2
    generations = Generation.objects.filter(provider="anthropic-demo")
    assert sorted(g.stream for g in generations) == [False, True]
    assert all(g.cached_prompt_tokens == 2 and g.cost_micros > 0 for g in generations)


def test_other_anthropic_endpoints_are_a_404_in_the_messages_shape(gateway):
    resp = httpx.post(gateway.api + "/anthropic/v1/messages/count_tokens", json={})
    assert resp.status_code == 404
    assert resp.json()["type"] == "error"
    assert resp.json()["error"]["type"] == "not_found_error"


def test_a_huge_body_is_a_413_in_the_messages_shape(gateway, settings):
    limit = settings.LOWROUTER_MAX_BODY_BYTES
    resp = httpx.post(
        gateway.api + "/anthropic/v1/messages",
        content=b'{"model": "demo/echo-small", "pad": "' + b"x" * limit + b'"}',
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 413
    assert resp.json()["error"] == {
        "type": "request_too_large",
        "code": "request_too_large",
        "message": f"The request body is larger than the {limit} bytes allowed.",
    }
