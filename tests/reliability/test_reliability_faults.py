"""Upstream faults and misbehaving clients: every request is recorded, nothing is charged that
the upstream did not deliver, no hold is left, and the prompt's canary is stored nowhere."""

import socket

import httpx
import pytest
from django.test import override_settings

from billing.models import Generation
from tests.conftest import add_provider, free_port
from tests.reliability.conftest import (
    assert_books_exact,
    chat_body,
    settled,
    wait_until,
)


@pytest.fixture
def http(gateway, funded, catalogue) -> httpx.Client:
    with httpx.Client(
        base_url=gateway.api,
        headers={"Authorization": f"Bearer {funded.token}"},
        timeout=30,
    ) as client:
        yield client


def _error(resp: httpx.Response) -> dict:
    err = resp.json()["error"]
    assert set(err) == {"type", "code", "message", "param"}
    return err


def test_upstream_5xx_is_a_free_502_with_a_record(http, funded, upstream, canary):
    upstream.config.fault, upstream.config.fault_status = "http_error", 503
    resp = http.post("/chat/completions", json=chat_body(canary))
    assert resp.status_code == 502, resp.text
    assert _error(resp)["code"] == "upstream_error"
    assert_books_exact(funded.user, generations=1)
    gen = Generation.objects.get()
    assert gen.cost_micros == 0 and gen.status == "upstream_error"


def test_upstream_429_is_passed_on_with_retry_after(http, funded, upstream, canary):
    upstream.config.fault, upstream.config.retry_after = "rate_limit", 7
    resp = http.post("/chat/completions", json=chat_body(canary))
    assert resp.status_code == 503
    assert _error(resp)["code"] == "upstream_rate_limited"
    assert int(resp.headers["Retry-After"]) >= 7
    assert_books_exact(funded.user, generations=1)
    assert Generation.objects.get().cost_micros == 0


def test_connection_refused_is_a_free_502(http, funded, catalogue, canary):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    add_provider("demo", f"http://127.0.0.1:{dead}/v1")
    from catalog.snapshot import mark_catalog_changed

    mark_catalog_changed()
    resp = http.post("/chat/completions", json=chat_body(canary))
    assert resp.status_code == 502
    assert_books_exact(funded.user, generations=1)
    assert Generation.objects.get().routing_trace["attempts"][0]["outcome"] == "connect_error"


@pytest.mark.parametrize("stream", [False, True])
def test_slow_first_byte_past_the_timeout_is_a_free_504(http, funded, upstream, canary, stream):
    upstream.config.fault = "timeout"
    with override_settings(LOWROUTER_UPSTREAM_FIRST_BYTE_TIMEOUT=0.5):
        resp = http.post("/chat/completions", json=chat_body(canary, stream=stream))
    assert resp.status_code == 504
    assert _error(resp)["code"] == "upstream_timeout"
    assert_books_exact(funded.user, generations=1)
    upstream.wait_for_outcome("cancelled")


def test_hung_stream_ends_with_an_error_event_after_the_idle_timeout(
    http, funded, upstream, canary
):
    upstream.config.fault, upstream.config.fault_after_chunks = "hang_stream", 2
    # Timeouts are read per request: the override applies to the pooled session too.
    with override_settings(LOWROUTER_UPSTREAM_IDLE_TIMEOUT=0.5):
        resp = http.post("/chat/completions", json=chat_body(canary, stream=True))
    assert resp.status_code == 200
    assert "upstream_stream_failed" in resp.text
    assert "[DONE]" not in resp.text
    assert_books_exact(funded.user, generations=1)
    assert Generation.objects.get().status == "upstream_error"


def test_stream_cut_midway_ends_with_an_error_event_and_no_done(http, funded, upstream, canary):
    upstream.config.fault, upstream.config.fault_after_chunks = "cut_stream", 3
    resp = http.post("/chat/completions", json=chat_body(canary, stream=True))
    assert resp.status_code == 200
    events = [line for line in resp.text.splitlines() if line.startswith("data:")]
    assert "upstream_stream_failed" in events[-1]
    assert "[DONE]" not in resp.text
    assert_books_exact(funded.user, generations=1)
    gen = Generation.objects.get()
    # Billed for the three pieces relayed before the cut (tests/routing/test_stream_usage_estimate).
    assert gen.status == "upstream_error" and gen.completion_tokens == 3 and gen.cost_micros > 0


def test_malformed_upstream_output_is_recorded_and_free(http, funded, upstream, canary):
    upstream.config.fault, upstream.config.fault_after_chunks = "malformed_chunk", 2
    resp = http.post("/chat/completions", json=chat_body(canary))
    assert resp.status_code == 502
    _error(resp)
    assert_books_exact(funded.user, generations=1)
    assert Generation.objects.get().cost_micros == 0


def test_a_malformed_chunk_mid_stream_ends_it_and_bills_what_was_relayed(
    http, funded, upstream, canary
):
    upstream.config.fault, upstream.config.fault_after_chunks = "malformed_chunk", 2
    resp = http.post("/chat/completions", json=chat_body(canary, stream=True))
    assert resp.status_code == 200
    assert "upstream_stream_failed" in resp.text and "[DONE]" not in resp.text
    assert_books_exact(funded.user, generations=1)
    gen = Generation.objects.get()
    assert gen.completion_tokens == 2 and gen.cost_micros > 0
    assert gen.usage_source == "estimated"


def test_client_disconnect_mid_stream_cancels_the_upstream_and_settles(
    gateway, funded, catalogue, upstream, canary
):
    upstream.config.chunk_interval_ms, upstream.config.completion_tokens = 50, 200
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            gateway.api + "/chat/completions",
            json=chat_body(canary, stream=True, max_tokens=500),
            headers={"Authorization": f"Bearer {funded.token}"},
        ) as resp,
    ):
        lines = resp.iter_lines()
        seen = [next(lines) for _ in range(4)]
        assert any(line.startswith("data:") for line in seen)
    upstream.wait_for_outcome("cancelled")
    wait_until(settled(funded.user, 1))
    assert_books_exact(funded.user, generations=1)
    gen = Generation.objects.get()
    assert gen.error_code == "client_disconnected"


def test_slow_reader_holds_the_upstream_back_instead_of_buffering(
    gateway, funded, catalogue, upstream, canary
):
    """Back-pressure: a client that stops reading stops the relay, so the gateway never holds
    the rest of a long stream in memory. 200k chunks are ~30 MB, far beyond the socket buffers
    on the path: if the upstream finished while the client slept, the gateway buffered it."""
    from tests.conftest import add_model

    add_model("demo/echo-small", max_output_tokens=300_000, context_window=400_000)
    from catalog.snapshot import mark_catalog_changed

    mark_catalog_changed()
    upstream.config.completion_tokens = 200_000
    port = int(gateway.url.rsplit(":", 1)[1])
    body = httpx.Request(
        "POST",
        gateway.api + "/chat/completions",
        json=chat_body(canary, stream=True, max_tokens=200_000),
    ).content
    head = (
        f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {funded.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    try:
        sock.sendall(head + body)
        received = b""
        while len(received) < 64 * 1024:
            data = sock.recv(16 * 1024)
            assert data, received[:300]
            received += data
        assert received.startswith(b"HTTP/1.1 200")
        # Give the upstream every chance to run ahead while nobody reads.
        import time

        time.sleep(1.0)
        assert all(r.outcome != "ok" for r in upstream.records)
    finally:
        sock.close()
    upstream.wait_for_outcome("cancelled", timeout=30)
    wait_until(settled(funded.user, 1), timeout=30)
    assert_books_exact(funded.user, generations=1)


def test_upstream_4xx_is_returned_and_billed_only_if_it_consumed(http, funded, upstream, canary):
    upstream.config.fault, upstream.config.fault_status = "http_error", 400
    resp = http.post("/chat/completions", json=chat_body(canary))
    assert resp.status_code == 400
    _error(resp)
    assert_books_exact(funded.user, generations=1)
    assert Generation.objects.get().cost_micros == 0


def test_free_port_helper_is_loopback():
    assert 0 < free_port() < 65536


@pytest.mark.parametrize("stream", [False, True])
def test_successful_completion_stores_no_prompt_or_completion_text(
    http, funded, upstream, canary, stream
):
    """The canary goes in the prompt; the demo upstream's reply is fixed text, checked too."""
    resp = http.post("/chat/completions", json=chat_body(canary, stream=stream))
    assert resp.status_code == 200
    assert "demo" in resp.text  # the reply (one word per chunk when streamed)
    assert_books_exact(funded.user, generations=1)
    gen = Generation.objects.get(account=funded.user)
    assert "demo provider" not in str(gen.routing_trace) + str(gen.eco_inputs)


def test_client_leaving_a_plain_request_still_settles_what_the_upstream_used(
    gateway, catalogue, funded, upstream, canary
):
    upstream.config.latency_ms = 600
    with pytest.raises(httpx.TimeoutException):
        httpx.post(
            gateway.api + "/chat/completions",
            json=chat_body(canary),
            headers={"Authorization": f"Bearer {funded.token}"},
            timeout=0.2,
        )
    wait_until(settled(funded.user, generations=1))
    gen = Generation.objects.get(account=funded.user)
    assert gen.status == "ok" and gen.cost_micros > 0
    assert_books_exact(funded.user, generations=1)
