"""The Anthropic Messages adapter: pure translation both ways, then the same translation against
the live fake upstream's /v1/messages, then a provider of wire format `anthropic` served through
the gateway to the official OpenAI SDK."""

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import httpx
import pytest
from openai import OpenAI

import routing.gateway
from billing.models import Generation
from catalog.credentials import set_credential
from catalog.models import WireFormat
from catalog.snapshot import mark_catalog_changed, reset_snapshot
from devtools.demo_upstream import DEMO_WORDS, DemoUpstream
from routing.anthropic_adapter import (
    API_VERSION,
    DEFAULT_MAX_TOKENS,
    PATH,
    StreamTranslator,
    from_messages_response,
    request_headers,
    to_messages_request,
    translate_events,
    usage_to_openai,
)
from tests.conftest import add_model, add_offering, add_provider

# --- Request translation ------------------------------------------------------------------


def test_system_messages_are_joined_into_the_system_field() -> None:
    body = to_messages_request(
        {
            "model": "claude-x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                {"role": "user", "content": "hello"},
            ],
        }
    )
    assert body["system"] == "Be brief.\n\nUse French."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert body["model"] == "claude-x"


def test_max_tokens_comes_from_the_payload_or_the_default() -> None:
    messages = [{"role": "user", "content": "hi"}]
    assert to_messages_request({"messages": messages})["max_tokens"] == DEFAULT_MAX_TOKENS
    assert to_messages_request({"messages": messages}, default_max_tokens=77)["max_tokens"] == 77
    assert to_messages_request({"messages": messages, "max_tokens": 9})["max_tokens"] == 9
    both = {"messages": messages, "max_tokens": 50, "max_completion_tokens": 20}
    assert to_messages_request(both)["max_tokens"] == 20


def test_sampling_and_stop_fields_are_mapped_and_openai_only_fields_dropped() -> None:
    body = to_messages_request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stop": "END",
            "temperature": 1.7,
            "top_p": 0.9,
            "stream": True,
            "stream_options": {"include_usage": True},
            "n": 1,
            "seed": 3,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.1,
            "logit_bias": {"1": 2},
            "response_format": {"type": "text"},
            "user": "user-42",
        }
    )
    assert body["stop_sequences"] == ["END"]
    assert body["temperature"] == 1  # OpenAI's 0-2 clamped to Messages' 0-1
    assert body["top_p"] == 0.9
    assert body["stream"] is True
    assert body["metadata"] == {"user_id": "user-42"}
    assert set(body) == {
        "model",
        "messages",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "top_p",
        "stream",
        "metadata",
    }
    listed = to_messages_request({"messages": [{"role": "user", "content": "x"}], "stop": ["a"]})
    assert listed["stop_sequences"] == ["a"]


def test_tool_calls_and_results_become_tool_use_and_tool_result_blocks() -> None:
    body = to_messages_request(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
                {"role": "user", "content": "Thanks"},
            ],
        }
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {
            # Both results, then the user's text, in the one user turn after the tool calls.
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_1",
                    "content": [{"type": "text", "text": "18C"}],
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "24C"}],
                },
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]


def test_image_urls_become_base64_or_url_image_blocks() -> None:
    body = to_messages_request(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Compare"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
                        {"type": "input_audio", "input_audio": {"data": "...", "format": "wav"}},
                    ],
                }
            ]
        }
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
    ]


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "weather"}},
            None,
            {"type": "tool", "name": "weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_tools_and_tool_choice_are_mapped(
    choice: object, parallel: object, expected: dict | None
) -> None:
    payload: dict = {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL]}
    if choice is not None:
        payload["tool_choice"] = choice
    if parallel is not None:
        payload["parallel_tool_calls"] = parallel
    body = to_messages_request(payload)
    assert body["tools"] == [
        {
            "name": "weather",
            "description": "Current weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert body.get("tool_choice") == expected


def test_headers_carry_the_key_and_api_version_not_a_bearer_token() -> None:
    assert request_headers("sk-ant") == {
        "Content-Type": "application/json",
        "anthropic-version": API_VERSION,
        "x-api-key": "sk-ant",
    }
    assert "x-api-key" not in request_headers(None)
    assert PATH == "/messages"


# --- Response translation -----------------------------------------------------------------


def test_text_response_becomes_a_chat_completion_with_cache_aware_usage() -> None:
    data = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 4,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
        },
    }
    out = from_messages_response(data, model="vendor/claude")
    assert out["id"] == "msg_1"
    assert out["object"] == "chat.completion"
    assert isinstance(out["created"], int)
    assert out["model"] == "vendor/claude"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Hello there"}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {
        "prompt_tokens": 130,
        "completion_tokens": 4,
        "total_tokens": 134,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


def test_tool_use_response_becomes_tool_calls_with_null_content() -> None:
    data = {
        "id": "msg_2",
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 7},
    }
    choice = from_messages_response(data, model="m")["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_1"
    assert call["type"] == "function"
    assert call["function"]["name"] == "weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str | None, finish: str) -> None:
    data = {"content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    assert from_messages_response(data, model="m")["choices"][0]["finish_reason"] == finish


def test_a_body_without_usage_or_content_does_not_raise() -> None:
    out = from_messages_response({"id": "msg"}, model="m")
    assert out["choices"][0]["message"]["content"] == ""
    assert "usage" not in out
    assert usage_to_openai(None) is None


# --- Stream translation -------------------------------------------------------------------

# A tool-using stream in the shape Anthropic documents: text block, then a tool_use block
# whose input arrives as partial JSON, with pings in between.
TOOL_STREAM = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_s",
            "type": "message",
            "role": "assistant",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 40, "output_tokens": 1, "cache_read_input_tokens": 8},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " me"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 15},
    },
    {"type": "message_stop"},
]


def feed_all(events: list[dict]) -> list[dict]:
    translator = StreamTranslator(model="vendor/claude")
    return [chunk for event in events for chunk in translator.feed(event["type"], event)]


def test_stream_translates_text_and_tool_call_deltas_in_order() -> None:
    chunks = feed_all(TOOL_STREAM)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert {c["id"] for c in chunks} == {"msg_s"}
    assert {c["model"] for c in chunks} == {"vendor/claude"}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content") or "" for d in deltas) == "Let me"
    tool_deltas = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert tool_deltas[0] == {
        "index": 0,
        "id": "toolu_9",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    arguments = "".join(t["function"]["arguments"] for t in tool_deltas)
    assert json.loads(arguments) == {"city": "Oslo"}
    assert {t["index"] for t in tool_deltas} == {0}


def test_finish_reason_comes_at_message_delta_and_usage_after_message_stop() -> None:
    chunks = feed_all(TOOL_STREAM)
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishing) == 1
    assert finishing[0]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-2] is finishing[0]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 48,
        "completion_tokens": 15,
        "total_tokens": 63,
        "prompt_tokens_details": {"cached_tokens": 8},
    }


def test_ping_and_block_stop_produce_nothing() -> None:
    translator = StreamTranslator(model="m")
    assert translator.feed("ping", {"type": "ping"}) == []
    assert translator.feed(None, {"type": "content_block_stop", "index": 0}) == []
    assert translator.feed(None, {"type": "some_future_event"}) == []


def test_error_event_becomes_an_openai_error_object() -> None:
    translator = StreamTranslator(model="m")
    [chunk] = translator.feed(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    assert chunk == {
        "error": {
            "type": "overloaded_error",
            "code": "overloaded_error",
            "message": "Overloaded",
            "param": None,
        }
    }


# --- Against the live fake upstream's /v1/messages ----------------------------------------

PROMPT = {
    "model": "demo-claude",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there friend"},
    ],
}
# The demo tokenizer: one token per word (system included), plus 4 per message turn.
PROMPT_TOKENS = 2 + 3 + 4
DEMO_TEXT = " ".join(DEMO_WORDS[:12])


def post_messages(server: DemoUpstream, payload: dict) -> httpx.Response:
    return httpx.post(
        server.base_url + PATH,
        json=to_messages_request(payload),
        headers=request_headers("sk-ant-live"),
        timeout=5,
    )


def test_translated_request_is_accepted_and_its_answer_translated(
    upstream: DemoUpstream,
) -> None:
    upstream.config.cached_tokens = 2
    resp = post_messages(upstream, PROMPT)
    assert resp.status_code == 200
    out = from_messages_response(resp.json(), model="vendor/claude")
    assert out["choices"][0]["message"]["content"] == DEMO_TEXT
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 2}
    record = upstream.records[-1]
    assert (record.path, record.max_tokens) == ("/v1/messages", DEFAULT_MAX_TOKENS)
    assert record.headers_x_api_key == "sk-ant-live"
    assert record.headers_authorization is None


def test_translated_stream_matches_the_plain_answer(upstream: DemoUpstream) -> None:
    translator = StreamTranslator(model="vendor/claude")
    chunks: list[dict] = []
    with httpx.stream(
        "POST",
        upstream.base_url + PATH,
        json=to_messages_request({**PROMPT, "stream": True, "max_tokens": 5}),
        headers=request_headers("sk-ant-live"),
        timeout=5,
    ) as resp:
        assert resp.status_code == 200
        event = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                chunks += translator.feed(event, json.loads(line.removeprefix("data: ")))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == " ".join(DEMO_WORDS[:5])
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finishing] == ["length"]
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    assert chunks[-1]["usage"]["prompt_tokens"] == PROMPT_TOKENS


def test_translate_events_passes_malformed_data_through() -> None:
    class Event:
        def __init__(self, data: str) -> None:
            self.data = data

    async def source() -> AsyncIterator[Event]:
        yield Event(json.dumps(TOOL_STREAM[0]))
        yield Event(json.dumps({"type": "ping"}))
        yield Event("{not json")

    async def collect() -> list[str]:
        return [event.data async for event in translate_events(source(), model="m")]

    out = asyncio.run(collect())
    assert json.loads(out[0])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert out[1] == "{not json"


# --- Through the gateway ------------------------------------------------------------------

needs_wiring = pytest.mark.skipif(
    not hasattr(routing.gateway, "anthropic_adapter"),
    reason="the gateway does not route wire_format=anthropic through the adapter yet",
)
MODEL = "anthropic-demo/claude"


@pytest.fixture
def anthropic_catalogue(transactional_db, upstream: DemoUpstream) -> Iterator[None]:
    provider = add_provider("anthropic-demo", upstream.base_url)
    provider.wire_format = WireFormat.ANTHROPIC
    set_credential(provider, "sk-ant-test")
    provider.save()
    add_offering(
        add_model(MODEL, max_output_tokens=300, platform_fee=Decimal("0")),
        provider,
        upstream_model="demo-claude",
    )
    mark_catalog_changed()
    yield
    reset_snapshot()


@pytest.fixture
def client(gateway, funded, anthropic_catalogue) -> OpenAI:
    return OpenAI(base_url=gateway.api, api_key=funded.token, max_retries=0)


@needs_wiring
def test_gateway_serves_an_anthropic_provider_to_the_openai_sdk(client, upstream) -> None:
    upstream.config.cached_tokens = 2
    resp = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    )
    assert resp.model == MODEL
    assert resp.choices[0].message.content == DEMO_TEXT
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens == 2 + 1 + 4
    assert resp.usage.prompt_tokens_details.cached_tokens == 2
    record = upstream.records[-1]
    assert record.path == "/v1/messages"
    assert record.model == "demo-claude"
    # No max_tokens from the caller: the model's whole output limit, which the hold covered.
    assert record.max_tokens == 300
    assert record.headers_x_api_key == "sk-ant-test"
    assert record.headers_authorization is None
    gen = Generation.objects.get(pk=resp.model_extra["lowrouter"]["generation_id"])
    assert (gen.status, gen.provider) == ("ok", "anthropic-demo")
    assert (gen.prompt_tokens, gen.cached_prompt_tokens) == (7, 2)
    assert gen.completion_tokens == 12
    assert gen.cost_micros > 0


@needs_wiring
def test_gateway_streams_an_anthropic_provider_with_usage_and_summary(client, upstream) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finishes, summaries, usage = [], [], [], None
    for chunk in stream:
        assert chunk.model == MODEL
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            if chunk.choices[0].finish_reason:
                finishes.append(chunk.choices[0].finish_reason)
        if chunk.usage:
            usage = chunk.usage
        if chunk.model_extra and "lowrouter" in chunk.model_extra:
            summaries.append(chunk.model_extra["lowrouter"])
    assert "".join(text) == " ".join(DEMO_WORDS[:4])
    assert finishes == ["length"]
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (1 + 4, 4)
    assert upstream.records[-1].max_tokens == 4
    gen = Generation.objects.get(pk=summaries[0]["generation_id"])
    assert (gen.status, gen.stream, gen.completion_tokens) == ("ok", True, 4)


@needs_wiring
def test_gateway_relays_an_anthropic_4xx_in_the_openai_error_shape(
    gateway, funded, anthropic_catalogue, upstream
) -> None:
    upstream.config.fault, upstream.config.fault_status = "http_error", 400
    resp = httpx.post(
        gateway.api + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {funded.token}"},
        timeout=10,
    )
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "injected HTTP 400" in error["message"]


@needs_wiring
def test_gateway_ends_an_anthropic_stream_with_an_error_on_a_malformed_event(
    gateway, funded, anthropic_catalogue, upstream
) -> None:
    upstream.config.fault = "malformed_chunk"
    lines = []
    with httpx.stream(
        "POST",
        gateway.api + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"Authorization": f"Bearer {funded.token}"},
        timeout=10,
    ) as resp:
        assert resp.status_code == 200
        lines = [line for line in resp.iter_lines() if line.startswith("data: ")]
    last = json.loads(lines[-1].removeprefix("data: "))
    assert last["error"]["code"] == "upstream_stream_failed"
    assert "data: [DONE]" not in lines
