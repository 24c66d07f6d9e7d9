import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from devtools.demo_upstream import DEMO_MODELS, DemoUpstream

CHAT = "/chat/completions"
BODY: dict[str, Any] = {
    "model": "demo-small",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hello there friend"}]},
    ],
}
# 2 + 3 words, plus 4 per message.
BODY_PROMPT_TOKENS = 5 + 2 * 4


def post_chat(server: DemoUpstream, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(server.base_url + CHAT, json=body, timeout=5, **kwargs)


def stream_lines(server: DemoUpstream, body: dict[str, Any]) -> list[str]:
    lines = []
    with httpx.stream("POST", server.base_url + CHAT, json=body, timeout=5) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line:
                lines.append(line)
    return lines


def content_events(lines: list[str]) -> list[str]:
    pieces = []
    for line in lines:
        if line.startswith("data: {") and line != "data: {not json":
            chunk = json.loads(line.removeprefix("data: "))
            for choice in chunk["choices"]:
                if choice["delta"].get("content"):
                    pieces.append(choice["delta"]["content"])
    return pieces


def test_json_completion_has_openai_shape_and_consistent_usage(upstream: DemoUpstream) -> None:
    upstream.config.cached_tokens = 3
    resp = post_chat(upstream, BODY, headers={"Authorization": "Bearer sk-up"})

    assert resp.status_code == 200
    data = resp.json()
    assert data["id"].startswith("chatcmpl-")
    assert data["object"] == "chat.completion"
    assert data["model"] == "demo-small"
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    assert len(choice["message"]["content"].split()) == 12
    assert data["usage"] == {
        "prompt_tokens": BODY_PROMPT_TOKENS,
        "completion_tokens": 12,
        "total_tokens": BODY_PROMPT_TOKENS + 12,
        "prompt_tokens_details": {"cached_tokens": 3},
    }
    record = upstream.records[-1]
    assert (record.outcome, record.status, record.stream) == ("ok", 200, False)
    assert record.headers_authorization == "Bearer sk-up"


@pytest.mark.parametrize("limit_field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_cuts_the_text_and_finishes_with_length(
    upstream: DemoUpstream, limit_field: str
) -> None:
    data = post_chat(upstream, {**BODY, limit_field: 4}).json()

    assert data["choices"][0]["finish_reason"] == "length"
    assert len(data["choices"][0]["message"]["content"].split()) == 4
    assert data["usage"]["completion_tokens"] == 4
    assert upstream.records[-1].max_tokens == 4


def test_text_is_deterministic(upstream: DemoUpstream) -> None:
    upstream.config.completion_tokens = 40
    first = post_chat(upstream, BODY).json()["choices"][0]["message"]["content"]
    second = post_chat(upstream, BODY).json()["choices"][0]["message"]["content"]

    assert first == second
    assert first.startswith("This is the LowRouter demo provider.")
    assert len(first.split()) == 40


def test_openai_sdk_reads_json_and_stream_with_usage(upstream: DemoUpstream) -> None:
    client = openai.OpenAI(base_url=upstream.base_url, api_key="x", max_retries=0)
    whole = client.chat.completions.create(model="demo-small", messages=BODY["messages"])
    chunks = list(
        client.chat.completions.create(
            model="demo-small",
            messages=BODY["messages"],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert whole.choices[0].finish_reason == "stop"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishing = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishing[-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    assert upstream.records[-1].include_usage is True


def test_stream_sends_one_token_per_chunk_then_done(upstream: DemoUpstream) -> None:
    lines = stream_lines(upstream, {**BODY, "stream": True, "max_tokens": 5})

    assert len(content_events(lines)) == 5
    assert lines[-1] == "data: [DONE]"
    finish = json.loads(lines[-2].removeprefix("data: "))
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }


def test_anthropic_sdk_reads_json_and_stream(upstream: DemoUpstream) -> None:
    client = anthropic.Anthropic(base_url=upstream.root_url, api_key="x", max_retries=0)
    messages = [{"role": "user", "content": "hello there friend"}]
    whole = client.messages.create(
        model="claude-demo", max_tokens=100, system="be brief", messages=messages
    )
    with client.messages.stream(model="claude-demo", max_tokens=3, messages=messages) as stream:
        streamed_text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert whole.model == "claude-demo"
    assert whole.stop_reason == "end_turn"
    assert whole.usage.input_tokens == 2 + 3 + 4
    assert whole.usage.output_tokens == 12
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 3
    assert streamed_text == "This is the"
    assert upstream.records[-1].headers_x_api_key == "x"


def test_anthropic_endpoint_speaks_anthropic_errors(upstream: DemoUpstream) -> None:
    client = anthropic.Anthropic(base_url=upstream.root_url, api_key="x", max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    no_limit = httpx.post(
        upstream.base_url + "/messages", json={"model": "claude-demo", "messages": messages}
    )
    upstream.config.fault = "rate_limit"

    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="claude-demo", max_tokens=10, messages=messages)

    assert no_limit.status_code == 400
    assert no_limit.json()["type"] == "error"
    assert no_limit.json()["error"]["type"] == "invalid_request_error"


def test_anthropic_stream_can_be_cut(upstream: DemoUpstream) -> None:
    client = anthropic.Anthropic(base_url=upstream.root_url, api_key="x", max_retries=0)
    upstream.config.fault = "cut_stream"
    messages = [{"role": "user", "content": "hi"}]

    stream = client.messages.stream(model="claude-demo", max_tokens=50, messages=messages)
    # The SDK does not wrap errors raised mid-stream: the transport error surfaces.
    with pytest.raises(httpx.RemoteProtocolError), stream as events:
        events.get_final_message()

    assert upstream.wait_for_outcome("cut_stream").path == "/v1/messages"


def test_models_and_health_endpoints_answer(upstream: DemoUpstream) -> None:
    models = httpx.get(upstream.base_url + "/models").json()
    health = httpx.get(upstream.root_url + "/healthz")

    assert [m["id"] for m in models["data"]] == list(DEMO_MODELS)
    assert health.status_code == 200


@pytest.mark.parametrize(
    ("content", "param"),
    [(b"{not json", None), (b'{"model": "demo-small"}', "messages"), (b"[1]", None)],
)
def test_bad_requests_get_400_in_openai_error_shape(
    upstream: DemoUpstream, content: bytes, param: str | None
) -> None:
    resp = httpx.post(upstream.base_url + CHAT, content=content)

    assert resp.status_code == 400
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_http_error_fault_returns_status_and_error_body(upstream: DemoUpstream) -> None:
    upstream.config.fault = "http_error"
    upstream.config.fault_status = 503

    resp = post_chat(upstream, BODY)

    assert resp.status_code == 503
    assert resp.json()["error"]["type"] == "server_error"
    assert "usage" not in resp.json()
    assert upstream.records[-1].outcome == "http_error"


def test_client_error_fault_can_report_consumed_usage(upstream: DemoUpstream) -> None:
    upstream.config.fault = "http_error"
    upstream.config.fault_status = 400
    upstream.config.usage_on_error = True

    resp = post_chat(upstream, BODY)

    assert resp.status_code == 400
    assert resp.json()["usage"]["prompt_tokens"] == BODY_PROMPT_TOKENS
    assert resp.json()["usage"]["completion_tokens"] == 0


def test_rate_limit_fault_returns_429_with_retry_after(upstream: DemoUpstream) -> None:
    upstream.config.fault = "rate_limit"
    upstream.config.retry_after = 7

    resp = post_chat(upstream, BODY)

    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "7"
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"


def test_timeout_fault_sends_nothing_until_the_client_gives_up(
    upstream: DemoUpstream,
) -> None:
    upstream.config.fault = "timeout"

    with pytest.raises(httpx.ReadTimeout):
        httpx.post(upstream.base_url + CHAT, json=BODY, timeout=0.2)

    record = upstream.wait_for_outcome("cancelled")
    assert (record.fault, record.status) == ("timeout", 0)


def test_cut_stream_drops_the_connection_after_n_chunks(upstream: DemoUpstream) -> None:
    upstream.config.fault = "cut_stream"
    upstream.config.fault_after_chunks = 3
    lines = []

    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", upstream.base_url + CHAT, json={**BODY, "stream": True}) as r,
    ):
        lines.extend(line for line in r.iter_lines() if line)

    assert len(content_events(lines)) == 3
    assert "data: [DONE]" not in lines
    assert upstream.wait_for_outcome("cut_stream").status == 200


def test_hang_stream_flushes_chunks_then_holds_the_connection(
    upstream: DemoUpstream,
) -> None:
    upstream.config.fault = "hang_stream"
    lines = []
    body = {**BODY, "stream": True}

    # Reading these lines only succeeds if each chunk was flushed as it was written.
    with httpx.stream("POST", upstream.base_url + CHAT, json=body, timeout=5) as resp:
        events = resp.iter_lines()
        while len(content_events(lines)) < 2:
            lines.append(next(events))

    # The server was still holding the response when the client left.
    record = upstream.wait_for_outcome("cancelled")
    assert (record.fault, record.status) == ("hang_stream", 200)


def test_malformed_chunk_is_sent_and_the_stream_then_completes(
    upstream: DemoUpstream,
) -> None:
    upstream.config.fault = "malformed_chunk"
    upstream.config.fault_after_chunks = 2

    lines = stream_lines(upstream, {**BODY, "stream": True})

    bad = lines.index("data: {not json")
    assert len(content_events(lines[:bad])) == 2
    assert len(content_events(lines)) == 12
    assert lines[-1] == "data: [DONE]"
    assert upstream.records[-1].outcome == "malformed_chunk"


def test_connection_reset_fault_closes_without_a_response(upstream: DemoUpstream) -> None:
    upstream.config.fault = "connection_reset"

    with pytest.raises(httpx.RemoteProtocolError):
        post_chat(upstream, BODY)

    assert upstream.wait_for_outcome("connection_reset").status == 0


def test_non_stream_faults_break_the_json_response(upstream: DemoUpstream) -> None:
    upstream.config.fault = "malformed_chunk"
    malformed = post_chat(upstream, BODY)
    upstream.config.fault = "cut_stream"
    with pytest.raises(httpx.RemoteProtocolError):
        post_chat(upstream, BODY)
    upstream.config.fault = "hang_stream"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(upstream.base_url + CHAT, json=BODY, timeout=0.2)

    assert malformed.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        malformed.json()
    assert upstream.wait_for_outcome("cut_stream").stream is False
    assert upstream.wait_for_outcome("cancelled").fault == "hang_stream"


def test_fault_count_limits_the_fault_to_the_next_requests(upstream: DemoUpstream) -> None:
    upstream.config.fault = "http_error"
    upstream.config.fault_count = 2

    statuses = [post_chat(upstream, BODY).status_code for _ in range(3)]

    assert statuses == [500, 500, 200]
    assert upstream.config.fault_count == 0


def test_config_endpoint_controls_the_server_out_of_process(upstream: DemoUpstream) -> None:
    control = upstream.root_url + "/_demo/config"
    changed = httpx.post(control, json={"fault": "rate_limit", "fault_count": 1})
    rejected = httpx.post(control, json={"fault": "explode"})
    unknown = httpx.post(control, json={"colour": "red"})
    limited = post_chat(upstream, BODY)
    served = post_chat(upstream, BODY)
    records = httpx.get(upstream.root_url + "/_demo/records").json()["records"]

    assert changed.json()["fault"] == "rate_limit"
    assert (rejected.status_code, unknown.status_code) == (400, 400)
    assert (limited.status_code, served.status_code) == (429, 200)
    assert [r["outcome"] for r in records] == ["rate_limit", "ok"]


def test_records_hold_metadata_but_no_message_content(upstream: DemoUpstream) -> None:
    post_chat(upstream, {**BODY, "messages": [{"role": "user", "content": "zebra-secret"}]})

    assert "zebra-secret" not in json.dumps([vars(r) for r in upstream.records])


def test_client_closing_a_stream_early_is_recorded_as_cancelled(
    upstream: DemoUpstream,
) -> None:
    upstream.config.completion_tokens = 10_000
    upstream.config.chunk_interval_ms = 5
    body = {**BODY, "stream": True}

    with httpx.stream("POST", upstream.base_url + CHAT, json=body, timeout=5) as resp:
        next(resp.iter_lines())

    record = upstream.wait_for_outcome("cancelled")
    assert (record.fault, record.status, record.stream) == ("none", 200, True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_management_command_serves_until_terminated() -> None:
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "manage.py", "demo_upstream", "--port", str(port)]
    proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        health = None
        deadline = time.monotonic() + 30
        while health is None and proc.poll() is None and time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except httpx.TransportError:
                time.sleep(0.05)
        assert health is not None, proc.stderr.read().decode() if proc.poll() is not None else ""
        completion = httpx.post(f"http://127.0.0.1:{port}/v1{CHAT}", json=BODY, timeout=5)
    finally:
        proc.terminate()
        stdout, _ = proc.communicate(timeout=10)

    assert health.status_code == 200
    assert completion.json()["usage"]["prompt_tokens"] == BODY_PROMPT_TOKENS
    assert b"not a language model" in stdout
