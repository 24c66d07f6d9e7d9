"""Every error path of the chat endpoint answers in the API's error shape, never a page."""

from decimal import Decimal

import httpx
import pytest

from billing.models import Generation, Hold
from keys.actions import create_key, revoke_key
from tests.factories import make_funded

BODY = {"model": "demo/echo-small", "messages": [{"role": "user", "content": "hi"}]}


def assert_error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    error = resp.json()["error"]
    assert set(error) == {"type", "code", "message", "param"}
    assert error["code"] == code
    assert error["message"]
    assert resp.headers.get("X-Request-ID")
    return error


@pytest.fixture
def post(gateway, catalogue):
    def _post(token: str | None = None, json=None, content=None, headers=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        return httpx.post(
            gateway.api + "/chat/completions", json=json, content=content, headers=h, timeout=10
        )

    return _post


def test_missing_key_is_401(post):
    assert_error(post(json=BODY), 401, "missing_api_key")


def test_malformed_key_is_401(post):
    assert_error(post(token="sk-not-ours", json=BODY), 401, "invalid_api_key")


def test_unknown_key_is_401(post):
    assert_error(post(token="lr-sk-" + "x" * 43, json=BODY), 401, "invalid_api_key")


def test_disabled_key_is_401_with_its_own_code(post, transactional_db):
    f = make_funded(enabled=False)
    assert_error(post(f.token, json=BODY), 401, "key_disabled")


def test_revoked_key_is_rejected_on_next_request(post, funded):
    assert post(funded.token, json=BODY).status_code == 200
    revoke_key(funded.key)
    assert_error(post(funded.token, json=BODY), 401, "invalid_api_key")


def test_invalid_json_is_400(post, funded):
    err = assert_error(post(funded.token, content=b"{not json"), 400, "invalid_json")
    assert "JSON" in err["message"]


def test_invalid_utf8_is_400(post, funded):
    assert_error(post(funded.token, content=b'{"model": "\xff\xfe"}'), 400, "invalid_json")


def test_deeply_nested_json_is_400(post, funded):
    deep = b'{"model":"demo/echo-small","messages":' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert_error(post(funded.token, content=deep), 400, "invalid_json")


@pytest.mark.parametrize(
    "body, param",
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": 42, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "demo/echo-small"}, "messages"),
        ({"model": "demo/echo-small", "messages": "hello"}, "messages"),
        ({"model": "demo/echo-small", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({**BODY, "stream": "yes"}, "stream"),
        ({**BODY, "temperature": "hot"}, "temperature"),
        ({**BODY, "max_tokens": -1}, "max_tokens"),
        ({**BODY, "max_tokens": 10**12}, "max_tokens"),
        ({**BODY, "max_tokens": "many"}, "max_tokens"),
        ({**BODY, "route": "eu"}, "route"),
    ],
)
def test_ill_typed_fields_are_400_naming_the_param(post, funded, body, param):
    err = assert_error(post(funded.token, json=body), 400, "invalid_request")
    assert err["param"] == param


def test_oversized_body_is_413(post, funded, settings):
    settings.LOWROUTER_MAX_BODY_BYTES = 1000
    big = {**BODY, "messages": [{"role": "user", "content": "x" * 5000}]}
    assert_error(post(funded.token, json=big), 413, "request_too_large")


def test_unknown_model_is_404(post, funded):
    err = assert_error(
        post(funded.token, json={**BODY, "model": "nope/nothing"}), 404, "model_not_found"
    )
    assert err["param"] == "model"


def test_header_injection_in_request_id_is_not_echoed(post, funded):
    resp = post(funded.token, json=BODY, headers={"X-Request-ID": "abc def<script>"})
    assert resp.status_code == 200
    assert resp.headers["X-Request-ID"].startswith("req_")
    good = post(funded.token, json=BODY, headers={"X-Request-ID": "client-123"})
    assert good.headers["X-Request-ID"] == "client-123"


def test_account_without_credit_gets_402_before_any_upstream_call(post, transactional_db, upstream):
    broke = make_funded(email="broke@example.com", credits=Decimal(0))
    err = assert_error(post(broke.token, json=BODY), 402, "insufficient_credits")
    assert "0.00 credits" in err["message"]
    assert upstream.records == []
    assert not Generation.objects.exists()
    assert not Hold.objects.exists()


def test_insufficient_balance_says_how_many_tokens_would_fit(post, transactional_db, upstream):
    # 1000 output tokens at 2.50 EUR/1M = 0.25 credits; 0.05 credits is not enough.
    f = make_funded(email="small@example.com", credits=Decimal("0.05"))
    err = assert_error(post(f.token, json=BODY), 402, "insufficient_credits")
    assert "max_tokens <=" in err["message"]
    assert "no max_tokens" in err["message"]
    assert upstream.records == []


def test_upstream_5xx_maps_to_502_and_costs_nothing(post, funded, upstream):
    upstream.config.fault = "http_error"
    upstream.config.fault_status = 500
    assert_error(post(funded.token, json=BODY), 502, "upstream_error")
    gen = Generation.objects.get()
    assert gen.status == "upstream_error"
    assert gen.cost_micros == 0
    assert not Hold.objects.exists()


def test_upstream_timeout_maps_to_504(post, funded, upstream, settings):
    settings.LOWROUTER_UPSTREAM_FIRST_BYTE_TIMEOUT = 0.3
    upstream.config.fault = "timeout"
    assert_error(post(funded.token, json=BODY), 504, "upstream_timeout")
    assert Generation.objects.get().status == "upstream_error"


def test_upstream_4xx_is_returned_not_retried(post, funded, upstream):
    upstream.config.fault = "http_error"
    upstream.config.fault_status = 400
    resp = post(funded.token, json=BODY)
    assert resp.status_code == 400
    assert len(upstream.records) == 1
    assert Generation.objects.get().status == "client_error"


def test_upstream_4xx_that_consumed_tokens_is_billed(post, funded, upstream):
    upstream.config.fault = "http_error"
    upstream.config.fault_status = 400
    upstream.config.usage_on_error = True
    assert post(funded.token, json=BODY).status_code == 400
    gen = Generation.objects.get()
    assert gen.prompt_tokens > 0
    assert gen.cost_micros > 0


def test_get_on_chat_endpoint_is_405_in_error_shape(gateway, funded, catalogue):
    resp = httpx.get(gateway.api + "/chat/completions")
    assert_error(resp, 405, "method_not_allowed")


def test_unknown_api_path_is_json_404(gateway, transactional_db):
    assert_error(httpx.get(gateway.api + "/nothing/here"), 404, "not_found")


def test_model_outside_the_allowlist_is_403(post, transactional_db, catalogue):
    f = make_funded(email="scoped@example.com", models=["other/model"])
    assert_error(post(f.token, json=BODY), 403, "model_not_allowed")


def test_second_key_of_same_account_works_independently(post, funded):
    _, token2 = create_key(account=funded.user, name="second")
    revoke_key(funded.key)
    assert post(token2, json=BODY).status_code == 200


def test_models_api_filters_match_the_browser_and_reject_bad_values(gateway, catalogue):
    ok = httpx.get(gateway.api + "/models", params={"provider": "demo", "capability": "tool_use"})
    assert [m["id"] for m in ok.json()["data"]] == ["demo/echo-small"]
    none = httpx.get(gateway.api + "/models", params={"capability": "vision"})
    assert none.json()["data"] == []
    err = assert_error(
        httpx.get(gateway.api + "/models", params={"min_context": "lots"}), 400, "invalid_filter"
    )
    assert err["param"] == "min_context"


def test_plain_answers_carry_their_length_and_are_not_chunked(post, funded):
    for resp in (post(funded.token, json=BODY), post(json=BODY)):
        assert resp.headers["content-length"] == str(len(resp.content))
        assert "transfer-encoding" not in resp.headers
