"""Failover end to end: four live fake providers (alpha, beta, delta in eu-west, cheapest first;
gamma in eu-north), one failing, timing out, rate limiting or cutting its response."""

import json

import httpx
from openai import OpenAI

from billing.models import Generation
from catalog.snapshot import mark_catalog_changed
from routing.policies import save_policy
from tests.conftest import add_model, add_offering, add_provider
from tests.routing.conftest import FLEET_MODEL


def fail(server, fault: str = "http_error", **config) -> None:
    server.config.fault = fault
    for name, value in config.items():
        setattr(server.config, name, value)


def test_a_5xx_fails_over_to_the_next_provider_in_the_same_region(fleet):
    fail(fleet.servers["alpha"], fault_status=502)
    resp = fleet.post({})
    assert resp.status_code == 200, resp.text
    assert resp.json()["lowrouter"]["provider"] == "beta"
    assert resp.json()["lowrouter"]["region"] == "eu-west"
    assert fleet.served() == {"alpha": 1, "beta": 1}
    attempts = fleet.trace(resp)["attempts"]
    assert [(a["provider"], a["outcome"], a.get("status")) for a in attempts] == [
        ("alpha", "http_error", 502),
        ("beta", "ok", None),
    ]
    assert all(isinstance(a["latency_ms"], int) for a in attempts)


def test_a_failed_slot_is_skipped_by_the_next_request(fleet):
    fail(fleet.servers["alpha"], fault_count=1)
    assert fleet.post({}).json()["lowrouter"]["provider"] == "beta"
    resp = fleet.post({})
    assert resp.json()["lowrouter"]["provider"] == "beta"
    assert fleet.served() == {"alpha": 1, "beta": 2}
    removed = fleet.trace(resp)["removed"]
    assert {
        "model": FLEET_MODEL,
        "provider": "alpha",
        "region": "eu-west",
        "why": "unhealthy:http_500",
    } in removed


def test_a_timeout_fails_over_in_the_same_region(fleet, settings):
    settings.LOWROUTER_UPSTREAM_FIRST_BYTE_TIMEOUT = 0.3
    fail(fleet.servers["alpha"], "timeout")
    resp = fleet.post({})
    assert resp.json()["lowrouter"]["provider"] == "beta"
    assert fleet.trace(resp)["attempts"][0]["outcome"] == "timeout"


def test_a_429_is_skipped_until_its_retry_after(fleet):
    fail(fleet.servers["alpha"], "rate_limit", retry_after=120)
    resp = fleet.post({})
    assert resp.json()["lowrouter"]["provider"] == "beta"
    first = fleet.trace(resp)["attempts"][0]
    assert (first["outcome"], first["retry_after"]) == ("rate_limited", 120)
    providers = httpx.get(fleet.url + "/providers", timeout=10).json()["data"]
    alpha = next(p for p in providers if p["id"] == "alpha")
    health = alpha["regions"][0]["health"]
    assert (health["state"], health["reason"]) == ("unavailable", "rate_limited")
    fleet.servers["alpha"].config.fault = "none"
    # Still inside the Retry-After window: alpha is not asked again.
    assert fleet.post({}).json()["lowrouter"]["provider"] == "beta"
    assert fleet.served()["alpha"] == 1


def test_a_response_cut_before_it_reached_the_client_fails_over(fleet):
    fail(fleet.servers["alpha"], "cut_stream")
    resp = fleet.post({})
    assert resp.status_code == 200
    assert resp.json()["lowrouter"]["provider"] == "beta"
    assert fleet.trace(resp)["attempts"][0]["outcome"] == "cut"


def test_a_stream_fails_over_when_the_upstream_fails_before_the_first_byte(fleet):
    fail(fleet.servers["alpha"], fault_status=503)
    client = OpenAI(base_url=fleet.url, api_key=fleet.funded.token, max_retries=0)
    summaries = [
        chunk.model_extra["lowrouter"]
        for chunk in client.chat.completions.create(
            model=FLEET_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        if chunk.model_extra and "lowrouter" in chunk.model_extra
    ]
    assert summaries[0]["provider"] == "beta"
    gen = Generation.objects.get(pk=summaries[0]["generation_id"])
    assert [a["outcome"] for a in gen.routing_trace["attempts"]] == ["http_error", "ok"]


def test_a_request_caused_4xx_is_returned_not_retried(fleet):
    fail(fleet.servers["alpha"], fault_status=400)
    resp = fleet.post({})
    assert resp.status_code == 400
    assert fleet.served() == {"alpha": 1}
    # ... and says nothing about the provider's health.
    assert fleet.post({}).status_code == 400
    assert fleet.served() == {"alpha": 2}


def test_at_most_two_retries(fleet):
    for name in ("alpha", "beta", "delta"):
        fail(fleet.servers[name])
    resp = fleet.post({})
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "upstream_error"
    # gamma (another region, allowed here) would have been the fourth attempt.
    assert fleet.served() == {"alpha": 1, "beta": 1, "delta": 1}
    gen = Generation.objects.get()
    assert len(gen.routing_trace["attempts"]) == 3
    assert gen.status == "upstream_error"
    assert gen.cost_micros == 0


def test_other_regions_serve_when_the_first_region_is_down_and_fallback_is_allowed(fleet):
    for name in ("alpha", "beta", "delta"):
        fail(fleet.servers[name])
    fleet.post({})  # marks the three eu-west slots unavailable
    resp = fleet.post({})
    assert resp.status_code == 200
    assert resp.json()["lowrouter"] == {
        **resp.json()["lowrouter"],
        "provider": "gamma",
        "region": "eu-north",
    }
    assert fleet.trace(resp)["failover"] == {"other_regions": True, "why": "allowed"}


def test_fallback_false_never_leaves_the_first_region(fleet):
    add_offering(
        add_model(FLEET_MODEL),
        add_provider("gamma", fleet.servers["gamma"].base_url),
        region="eu-west",
        prompt=9,
        completion=9,
    )
    mark_catalog_changed()
    # alpha and beta fail; gamma also serves eu-west (dearest there) and eu-north.
    for name in ("alpha", "beta"):
        fail(fleet.servers[name])
    resp = fleet.post(
        {"route": {"fallback": False}, "provider": {"only": ["alpha", "beta", "gamma"]}}
    )
    # gamma@eu-west is a same-region candidate: allowed even with fallback false.
    assert resp.json()["lowrouter"] == {
        **resp.json()["lowrouter"],
        "provider": "gamma",
        "region": "eu-west",
    }


def test_fallback_false_returns_the_failure_instead_of_another_region(fleet):
    for name in ("alpha", "beta"):
        fail(fleet.servers[name])
    resp = fleet.post({"route": {"fallback": False}, "provider": {"ignore": ["delta"]}})
    assert resp.status_code == 502
    assert fleet.served() == {"alpha": 1, "beta": 1}
    trace = Generation.objects.get().routing_trace
    assert trace["failover"] == {"other_regions": False, "why": "fallback_false"}
    # Without the flag, the same request reaches gamma in eu-north.
    fleet.servers["alpha"].config.fault = fleet.servers["beta"].config.fault = "http_error"
    resp = fleet.post({"provider": {"ignore": ["delta"]}})
    assert resp.json()["lowrouter"]["provider"] == "gamma"


def test_a_region_pin_fails_closed_with_a_503_and_never_another_region(fleet):
    for name in ("alpha", "beta", "delta"):
        fail(fleet.servers[name])
    first = fleet.post({"route": {"region": "eu-west"}})
    assert first.status_code == 502
    second = fleet.post({}, headers={"X-LowRouter-Region": "eu-west"})
    assert second.status_code == 503
    assert second.json()["error"]["code"] == "all_candidates_unhealthy"
    assert second.json()["error"]["type"] == "service_unavailable"
    assert "gamma" not in fleet.served()
    nowhere = fleet.post({"route": {"region": "us-west"}})
    assert (nowhere.status_code, nowhere.json()["error"]["code"]) == (503, "no_provider_in_region")


def test_a_key_region_pin_fails_closed(fleet, transactional_db):
    from tests.factories import make_funded

    pinned = make_funded(email="pinned@example.com", region="eu-north")
    fail(fleet.servers["gamma"])
    resp = httpx.post(
        fleet.url + "/chat/completions",
        json={"model": FLEET_MODEL, "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {pinned.token}"},
        timeout=20,
    )
    assert resp.status_code == 502
    assert fleet.served() == {"gamma": 1}


def test_the_trace_says_who_was_considered_removed_tried_and_why_the_winner_won(fleet):
    secret = "my very private prompt text"
    fail(fleet.servers["alpha"], fault_count=1)
    resp = httpx.post(
        fleet.url + "/chat/completions",
        json={
            "model": FLEET_MODEL,
            "messages": [{"role": "user", "content": secret}],
            "provider": {"ignore": ["delta"]},
            "user": "end-user-7",
        },
        headers={"Authorization": f"Bearer {fleet.funded.token}"},
        timeout=20,
    )
    record = fleet.generation(resp.headers["X-LowRouter-Generation-ID"])
    trace = record["routing_trace"]
    assert [c["provider"] for c in trace["candidates"]] == ["alpha", "beta", "gamma"]
    assert all(0 < c["score"] <= 1 for c in trace["candidates"])
    assert trace["candidates"][0]["score"] > trace["candidates"][1]["score"]
    assert {
        "model": FLEET_MODEL,
        "provider": "delta",
        "region": "eu-west",
        "why": "provider.ignore",
    } in trace["removed"]
    assert [(a["provider"], a["outcome"]) for a in trace["attempts"]] == [
        ("alpha", "http_error"),
        ("beta", "ok"),
    ]
    assert trace["winner_reason"] == "cheapest"
    assert trace["constraints"]["request"] == {"ignore": ["delta"]}
    assert secret not in json.dumps(record)
    assert "end-user-7" not in json.dumps(record)


def test_account_policy_applies_from_the_next_request(fleet):
    save_policy(account_id=fleet.funded.user.pk, provider_denylist=["alpha"])
    resp = fleet.post({})
    assert resp.json()["lowrouter"]["provider"] == "beta"
    assert fleet.trace(resp)["constraints"]["account"]["provider_denylist"] == ["alpha"]
