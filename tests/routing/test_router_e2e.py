"""Routing choices seen from outside: auto models, sticky users, low-carbon preference, the
providers endpoint and operator soft-disable, through the live gateway and fake providers."""

from decimal import Decimal

import httpx

from catalog.models import Provider, ProviderStatus
from catalog.snapshot import mark_catalog_changed
from tests.conftest import add_model, add_offering, add_provider


def _offer(fleet, model_id: str, provider: str, region: str, price: str, **model_fields):
    model = add_model(model_id, platform_fee=Decimal("0"), **model_fields)
    add_offering(
        model,
        add_provider(provider, fleet.servers[provider].base_url),
        region=region,
        prompt=Decimal(price),
        completion=Decimal(price),
    )


def test_auto_cheap_picks_the_cheapest_capable_model_and_auto_the_smallest(fleet):
    _offer(fleet, "big/cheap", "alpha", "eu-west", "0.20", active_params_b=Decimal("70"))
    _offer(fleet, "small/pricey", "beta", "eu-west", "3.00", active_params_b=Decimal("1"))
    mark_catalog_changed()
    cheap = fleet.post({"model": "lowrouter/auto-cheap"})
    assert cheap.status_code == 200, cheap.text
    assert cheap.json()["model"] == "big/cheap"
    assert fleet.trace(cheap)["winner_reason"] == "cheapest"
    small = fleet.post({"model": "lowrouter/auto"})
    assert small.json()["model"] == "small/pricey"
    assert fleet.trace(small)["winner_reason"] == "smallest_model"
    assert fleet.trace(small)["requested_model"] == "lowrouter/auto"


def test_the_same_user_keeps_the_same_provider_when_candidates_tie(fleet):
    _offer(fleet, "tie/chat", "alpha", "eu-west", "1.00")
    _offer(fleet, "tie/chat", "beta", "eu-west", "1.00")
    mark_catalog_changed()
    for user in ("alice", "bob", "carol", "dave"):
        served = {
            fleet.post({"model": "tie/chat", "user": user}).json()["lowrouter"]["provider"]
            for _ in range(3)
        }
        assert len(served) == 1, user
    resp = fleet.post({"model": "tie/chat", "user": "alice"})
    assert fleet.trace(resp)["winner_reason"] == "sticky"


def test_prefer_low_carbon_moves_traffic_to_the_cleaner_region(fleet):
    # alpha serves the model in a coal-heavier region at half the price of a very clean one.
    _offer(fleet, "green/chat", "alpha", "eu-central", "1.00")
    _offer(fleet, "green/chat", "alpha", "eu-north", "2.00")
    mark_catalog_changed()
    plain = fleet.post({"model": "green/chat"})
    assert plain.json()["lowrouter"]["region"] == "eu-central"
    green = fleet.post({"model": "green/chat", "route": {"prefer_low_carbon": True}})
    assert green.json()["lowrouter"]["region"] == "eu-north"
    assert fleet.trace(green)["winner_reason"] == "lowest_carbon"


def test_all_else_equal_the_cleaner_region_serves(fleet):
    _offer(fleet, "even/chat", "alpha", "eu-central", "1.00")
    _offer(fleet, "even/chat", "alpha", "eu-north", "1.00")
    mark_catalog_changed()
    resp = fleet.post({"model": "even/chat", "route": {"prefer_low_carbon": True}})
    assert resp.json()["lowrouter"]["region"] == "eu-north"


def test_a_soft_disabled_provider_is_listed_but_never_routed_to(fleet):
    Provider.objects.filter(id="alpha").update(status=ProviderStatus.UNAVAILABLE)
    mark_catalog_changed()
    resp = fleet.post({})
    assert resp.json()["lowrouter"]["provider"] == "beta"
    assert "alpha" not in fleet.served()
    pinned = fleet.post({"route": {"provider": "alpha"}})
    assert (pinned.status_code, pinned.json()["error"]["code"]) == (503, "provider_disabled")
    listed = {p["id"]: p for p in httpx.get(fleet.url + "/providers", timeout=10).json()["data"]}
    assert listed["alpha"]["status"] == "unavailable"
    assert listed["alpha"]["routable"] is False
    assert listed["beta"]["routable"] is True


def test_providers_endpoint_lists_regions_currency_handling_and_health(fleet):
    Provider.objects.filter(id="beta").update(
        data_handling={"retention": "30 days", "training_use": "no", "notes": "EU endpoint"}
    )
    mark_catalog_changed()
    fleet.servers["alpha"].config.fault = "http_error"
    fleet.post({})
    resp = httpx.get(fleet.url + "/providers", timeout=10)
    assert resp.status_code == 200
    listed = {p["id"]: p for p in resp.json()["data"]}
    assert set(listed) >= {"alpha", "beta", "delta", "gamma"}
    beta = listed["beta"]
    assert beta["billing_currency"] == "EUR"
    assert beta["data_handling"]["retention"] == "30 days"
    assert [r["region"] for r in beta["regions"]] == ["eu-west"]
    assert beta["regions"][0]["health"]["state"] == "ok"
    assert beta["regions"][0]["health"]["latency_ms_p50"] is not None
    alpha_health = listed["alpha"]["regions"][0]["health"]
    assert (alpha_health["state"], alpha_health["reason"]) == ("unavailable", "http_500")


def test_the_region_header_pins_like_route_region(fleet):
    resp = fleet.post({}, headers={"X-LowRouter-Region": "eu-north"})
    assert resp.json()["lowrouter"]["provider"] == "gamma"
    clash = fleet.post({"route": {"region": "eu-west"}}, headers={"X-LowRouter-Region": "eu-north"})
    assert (clash.status_code, clash.json()["error"]["code"]) == (400, "contradictory_route")
