"""Inputs that used to end in an HTTP 500 get a 4xx in the API's error shape instead, on both
ways into the gateway (the ASGI fast path, and the Django view a deployment without that wrapper
uses) and in both API shapes (OpenAI's, Anthropic Messages'). Nothing of such a request reaches
the upstream."""

import asyncio
import json

import httpx
import pytest
from django.test import AsyncClient, Client

from tests.reliability.test_reliability_bad_input import (
    assert_error_shape,
    assert_messages_error_shape,
)

CHAT = "/chat/completions"
MESSAGES = "/anthropic/v1/messages"


def chat_raw(content: str = '"hi"', **extra: str) -> bytes:
    """A chat body as JSON text, so values the standard library would never write (NaN, a lone
    surrogate escape, 1e999) can be put in it verbatim."""
    fields = "".join(f', "{name}": {value}' for name, value in extra.items())
    return (
        '{"model": "demo/echo-small", "max_tokens": 5, '
        f'"messages": [{{"role": "user", "content": {content}}}]{fields}}}'
    ).encode()


def post_fast_path(gateway, path: str, raw: bytes, token: str) -> tuple[int, dict]:
    resp = httpx.post(
        gateway.api + path,
        content=raw,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )
    return resp.status_code, resp.json()


# The ASGI endpoint is the only way in for POST (the Django views answer other methods).
ENTRIES = [post_fast_path]


def assert_refused(path: str, status: int, body: dict, param: str) -> None:
    assert status == 400, body
    if path == MESSAGES:
        assert set(body) == {"type", "error"} and body["type"] == "error", body
        assert body["error"]["type"] == "invalid_request_error", body
        assert param in body["error"]["message"], body
    else:
        assert set(body["error"]) == {"type", "code", "message", "param"}, body
        assert body["error"]["param"] == param, body


UNSENDABLE = [
    pytest.param(chat_raw('"hi \\ud800 there"'), "messages[0].content", id="high surrogate"),
    pytest.param(chat_raw('"\\udfff"'), "messages[0].content", id="low surrogate"),
    pytest.param(
        chat_raw('[{"type": "text", "text": "\\ud83d"}]'),
        "messages[0].content[0].text",
        id="surrogate in a content part",
    ),
    pytest.param(chat_raw(temperature="NaN"), "temperature", id="NaN"),
    pytest.param(chat_raw(temperature="1e999"), "temperature", id="1e999"),
    pytest.param(chat_raw(top_p="-1e999"), "top_p", id="-1e999"),
    pytest.param(chat_raw(temperature="Infinity"), "temperature", id="Infinity"),
    pytest.param(chat_raw(top_p="-Infinity"), "top_p", id="-Infinity"),
]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("path", [CHAT, MESSAGES])
@pytest.mark.parametrize("raw, param", UNSENDABLE)
def test_a_lone_surrogate_or_a_number_not_finite_is_a_400_naming_the_param_never_sent_upstream(
    gateway, funded, catalogue, upstream, entry, path, raw, param
):
    status, body = entry(gateway, path, raw, funded.token)
    assert_refused(path, status, body, param)
    assert upstream.records == []


@pytest.mark.parametrize("name", ["presence_penalty", "frequency_penalty", "seed"])
def test_penalties_and_other_numbers_that_are_not_finite_are_refused_too(
    gateway, funded, catalogue, upstream, name
):
    status, body = post_fast_path(gateway, CHAT, chat_raw(**{name: "NaN"}), funded.token)
    assert_refused(CHAT, status, body, name)
    assert upstream.records == []


def test_a_non_finite_number_deep_inside_the_body_is_named_by_its_path(
    gateway, funded, catalogue, upstream
):
    raw = chat_raw(provider='{"max_price": {"prompt": 1e999}}')
    status, body = post_fast_path(gateway, CHAT, raw, funded.token)
    assert_refused(CHAT, status, body, "provider.max_price.prompt")
    assert upstream.records == []


@pytest.mark.parametrize("endpoint", ["generation", "metrics"])
@pytest.mark.parametrize("generation_id", ["abc%00", "%00", "gen_%00x"])
def test_a_nul_character_in_a_generation_id_is_a_404_in_the_error_shape(
    gateway, funded, endpoint, generation_id
):
    resp = httpx.get(
        f"{gateway.api}/{endpoint}/{generation_id}",
        headers={"Authorization": f"Bearer {funded.token}"},
        timeout=30,
    )
    assert resp.status_code == 404, resp.text[:300]
    assert assert_error_shape(resp)["code"] == "generation_not_found"


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", CHAT),
        ("POST", MESSAGES),
        ("GET", "/models"),
        ("GET", "/credits"),
        ("GET", "/generation/x"),
        ("GET", MESSAGES),
        ("GET", "/no/such/endpoint"),
        ("GET", "/anthropic/v1/count_tokens"),
    ],
)
def test_a_bad_host_header_on_an_api_route_is_a_400_in_that_api_s_error_shape(
    gateway, funded, method, path
):
    resp = httpx.request(
        method,
        gateway.api + path,
        json={},
        headers={"Host": "evil.example", "Authorization": f"Bearer {funded.token}"},
        timeout=30,
    )
    assert resp.status_code == 400, resp.text[:300]
    assert resp.headers["Content-Type"].startswith("application/json")
    if path.startswith("/anthropic/"):
        error = assert_messages_error_shape(resp)
    else:
        error = assert_error_shape(resp)
    assert error["code"] == "bad_host"


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
def test_a_bad_host_header_on_the_django_view_is_a_400_in_the_error_shape(transactional_db, path):
    async def post() -> object:
        return await AsyncClient().post(
            "/api/v1" + path, {}, content_type="application/json", headers={"Host": "evil.example"}
        )

    answer = asyncio.run(post())
    assert answer.status_code == 400
    body = json.loads(answer.content)
    assert (body["error"]["code"]) == "bad_host"
    assert ("type" in body) == (path == MESSAGES)


def test_a_bad_host_header_on_a_page_keeps_django_s_own_answer(transactional_db):
    resp = Client().get("/models", headers={"Host": "evil.example"})
    assert resp.status_code == 400
    assert not resp["Content-Type"].startswith("application/json")
