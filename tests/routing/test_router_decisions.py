"""The router's decision order and scoring, on a catalogue built in memory in the test."""

import contextlib
import json
import random
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.snapshot import CatalogSnapshot, ModelView, OfferingView, load_snapshot
from eco.estimate import load_eco_context
from keys.auth import KeyContext
from routing.errors import ApiError
from routing.health import SlotHealth, SlotState
from routing.policies import AccountPolicy, get_policy, save_policy
from routing.router import plan_route
from routing.validation import parse_chat_request

ALL_CAPS = ("tool_use", "vision", "structured_output", "streaming")


def offering(
    model_id: str,
    provider: str,
    region: str,
    price: str = "1",
    *,
    reason: str = "",
    status: str = "ok",
) -> OfferingView:
    p = Decimal(price)
    return OfferingView(
        model_id=model_id,
        provider_id=provider,
        provider_name=provider.title(),
        region=region,
        upstream_model="up-" + model_id,
        base_url="http://127.0.0.1:9/v1",
        wire_format="openai",
        credential=None,
        currency="EUR",
        prompt_eur=p,
        completion_eur=p,
        cached_prompt_eur=None,
        unavailable_reason=reason,
        provider_status=status,
    )


def model(
    model_id: str,
    offerings: list[tuple],
    *,
    params: str | None = "7",
    caps: tuple[str, ...] = ("tool_use", "streaming"),
    context: int = 8192,
) -> ModelView:
    return ModelView(
        id=model_id,
        display_name=model_id,
        owner=model_id.split("/")[0],
        context_window=context,
        max_output_tokens=1000,
        capabilities=caps,
        active_params_b=None if params is None else Decimal(params),
        params_accuracy="medium",
        params_nominal=False,
        platform_fee_eur=Decimal("0"),
        lifecycle="active",
        sunset_at=None,
        replacement="",
        offerings=tuple(
            offering(model_id, *o[:3], **(o[3] if len(o) > 3 else {})) for o in offerings
        ),
    )


def snap(*models: ModelView, eco: object = None) -> CatalogSnapshot:
    return CatalogSnapshot(version=(), models={m.id: m for m in models}, providers={}, eco=eco)


def key(**policy: object) -> KeyContext:
    fields = {
        "key_id": 1,
        "key_name": "k",
        "account_id": 1,
        "models": (),
        "region": "",
        "daily_credit_limit": None,
        "monthly_credit_limit": None,
        "expires_at": None,
        "prefer_low_carbon": False,
    }
    return KeyContext(**{**fields, **policy})


def request(model_id: str = "m/one", **body: object):
    payload = {"model": model_id, "messages": [{"role": "user", "content": "hi"}], **body}
    return parse_chat_request(json.dumps(payload).encode())


def error_of(fn, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*args, **kwargs)
    return info.value


def slots(plan) -> list[tuple[str, str]]:
    return [(o.provider_id, o.region) for o in plan.candidates]


TWO_REGIONS = model(
    "m/one",
    [("alpha", "eu-west", "1"), ("beta", "eu-west", "2"), ("gamma", "us-east", "0.5")],
)


# --- Decision order: request, then key, then account ------------------------------------------


def test_request_region_pin_removes_other_regions_and_forbids_failover_there():
    plan = plan_route(snap(TWO_REGIONS), request(route={"region": "eu-west"}), key())
    assert slots(plan) == [("alpha", "eu-west"), ("beta", "eu-west")]
    assert plan.other_regions_allowed is False
    removed = plan.trace.removed
    assert {
        "model": "m/one",
        "provider": "gamma",
        "region": "us-east",
        "why": "route.region",
    } in removed
    assert plan.trace.failover == {"other_regions": False, "why": "pinned_by:route.region"}


def test_region_header_is_honoured_like_route_region():
    plan = plan_route(snap(TWO_REGIONS), request(), key(), region_header="us-east")
    assert slots(plan) == [("gamma", "us-east")]
    assert plan.trace.winner_reason == "pinned"
    assert plan.trace.constraints["request"]["region_source"] == "X-LowRouter-Region"


def test_header_and_route_region_that_disagree_are_a_400_naming_both():
    err = error_of(
        plan_route,
        snap(TWO_REGIONS),
        request(route={"region": "eu-west"}),
        key(),
        region_header="us-east",
    )
    assert (err.status, err.code, err.param) == (400, "contradictory_route", "route.region")
    assert "X-LowRouter-Region" in err.message


def test_a_request_cannot_escape_its_keys_region_pin():
    err = error_of(
        plan_route, snap(TWO_REGIONS), request(route={"region": "us-east"}), key(region="eu-west")
    )
    assert (err.status, err.code) == (400, "region_conflict")
    assert "pinned to 'eu-west'" in err.message


def test_key_region_pin_with_no_provider_there_fails_closed_with_503():
    err = error_of(plan_route, snap(TWO_REGIONS), request(), key(region="eu-north"))
    assert (err.status, err.code) == (503, "no_provider_in_region")
    assert err.type == "service_unavailable"


def test_key_region_pin_narrows_an_unpinned_request():
    plan = plan_route(snap(TWO_REGIONS), request(), key(region="us-east"))
    assert slots(plan) == [("gamma", "us-east")]
    assert plan.trace.failover["why"] == "pinned_by:key.region"


def test_key_model_allowlist_applies_to_explicit_and_fallback_models():
    other = model("m/two", [("alpha", "eu-west", "1")])
    err = error_of(plan_route, snap(TWO_REGIONS, other), request(), key(models=("m/two",)))
    assert (err.status, err.code) == (403, "model_not_allowed")
    err = error_of(
        plan_route,
        snap(TWO_REGIONS, other),
        request("m/two", models=["m/one"]),
        key(models=("m/two",)),
    )
    assert (err.status, err.param) == (403, "models")


def test_account_denylist_and_allowlist_remove_providers():
    policy = AccountPolicy(
        account_id=1, provider_denylist=("gamma",), provider_allowlist=("alpha", "gamma")
    )
    plan = plan_route(snap(TWO_REGIONS), request(), key(), policy=policy)
    assert slots(plan) == [("alpha", "eu-west")]
    whys = {r["provider"]: r["why"] for r in plan.trace.removed}
    assert whys == {"beta": "account.provider_allowlist", "gamma": "account.provider_denylist"}


def test_account_fixed_provider_is_a_hard_limit():
    plan = plan_route(
        snap(TWO_REGIONS),
        request(),
        key(),
        policy=AccountPolicy(account_id=1, fixed_provider="beta"),
    )
    assert slots(plan) == [("beta", "eu-west")]
    assert plan.trace.winner_reason == "pinned"


def test_request_provider_that_the_account_forbids_is_a_400():
    policy = AccountPolicy(account_id=1, provider_denylist=("alpha",))
    err = error_of(
        plan_route, snap(TWO_REGIONS), request(route={"provider": "alpha"}), key(), policy=policy
    )
    assert (err.status, err.code, err.param) == (400, "contradictory_route", "route.provider")


def test_account_preferred_region_only_weighs_and_allows_other_regions():
    policy = AccountPolicy(account_id=1, preferred_region="eu-west")
    plan = plan_route(snap(TWO_REGIONS), request(), key(), policy=policy)
    # gamma is cheapest, but the account prefers eu-west; failover may still leave it.
    assert slots(plan)[0] == ("alpha", "eu-west")
    gamma = next(c for c in plan.trace.candidates if c["provider"] == "gamma")
    assert gamma["terms"]["preferred_region"] > 0
    assert plan.other_regions_allowed is True


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"route": {"provider": "alpha"}, "provider": {"only": ["beta"]}}, "provider.only"),
        ({"provider": {"only": ["alpha"], "ignore": ["alpha"]}}, "provider.ignore"),
        ({"route": {"fallback": True}, "provider": {"allow_fallbacks": False}}, "route.fallback"),
        (
            {
                "route": {"provider": "alpha"},
                "provider": {"order": ["beta"], "allow_fallbacks": False},
            },
            "provider.order",
        ),
    ],
)
def test_contradictory_constraints_are_a_400_that_says_which(body, param):
    err = error_of(plan_route, snap(TWO_REGIONS), request(**body), key())
    assert (err.status, err.code, err.param) == (400, "contradictory_route", param)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"route": {"region": "EU WEST"}}, "route.region"),
        ({"route": {"teleport": True}}, "route.teleport"),
        ({"route": {"fallback": "no"}}, "route.fallback"),
        ({"provider": {"sort": "vibes"}}, "provider.sort"),
        ({"provider": {"max_price": {"prompt": -1}}}, "provider.max_price.prompt"),
        ({"models": ["m/one", 3]}, "models"),
    ],
)
def test_malformed_routing_fields_are_a_400_naming_the_field(body, param):
    err = error_of(plan_route, snap(TWO_REGIONS), request(**body), key())
    assert (err.status, err.param) == (400, param)


# --- OpenRouter's provider object and models list ---------------------------------------------


def test_openrouter_only_and_ignore_narrow_the_providers():
    plan = plan_route(
        snap(TWO_REGIONS),
        request(provider={"only": ["alpha", "gamma"], "ignore": ["gamma"]}),
        key(),
    )
    assert slots(plan) == [("alpha", "eu-west")]


def test_openrouter_order_is_a_strong_preference_and_without_fallbacks_a_limit():
    plan = plan_route(snap(TWO_REGIONS), request(provider={"order": ["beta", "alpha"]}), key())
    assert slots(plan)[0] == ("beta", "eu-west")
    assert plan.trace.winner_reason == "provider_order"
    plan = plan_route(
        snap(TWO_REGIONS), request(provider={"order": ["beta"], "allow_fallbacks": False}), key()
    )
    assert slots(plan) == [("beta", "eu-west")]
    assert plan.other_regions_allowed is False


def test_openrouter_max_price_below_every_offering_is_a_503_price_ceiling_too_low():
    err = error_of(
        plan_route, snap(TWO_REGIONS), request(provider={"max_price": {"prompt": 0.1}}), key()
    )
    assert (err.status, err.code) == (503, "price_ceiling_too_low")
    plan = plan_route(
        snap(TWO_REGIONS), request(provider={"max_price": {"prompt": 1, "completion": 1}}), key()
    )
    assert {s[0] for s in slots(plan)} == {"alpha", "gamma"}


def test_openrouter_sort_by_latency_prefers_the_fastest_slot():
    health = {
        ("alpha", "eu-west"): SlotHealth(SlotState.OK, 0, 0, "", 0.0, 900.0),
        ("beta", "eu-west"): SlotHealth(SlotState.OK, 0, 0, "", 0.0, 100.0),
        ("gamma", "us-east"): SlotHealth(SlotState.OK, 0, 0, "", 0.0, 800.0),
    }
    plan = plan_route(
        snap(TWO_REGIONS), request(provider={"sort": "latency"}), key(), health=health
    )
    assert slots(plan)[0] == ("beta", "eu-west")
    assert plan.trace.winner_reason == "fastest"


def test_models_list_falls_back_to_the_next_model_when_the_first_cannot_be_served():
    down = model("m/down", [("alpha", "eu-west", "1", {"reason": "provider_disabled"})])
    plan = plan_route(snap(TWO_REGIONS, down), request("m/down", models=["m/down", "m/one"]), key())
    assert plan.model.id == "m/one"
    assert plan.trace.resolved_model == "m/one"


# --- Availability: soft-disable, health, capability ------------------------------------------


def test_soft_disabled_provider_is_never_routed_to():
    m = model(
        "m/one",
        [
            ("alpha", "eu-west", "0.1", {"reason": "provider_disabled", "status": "unavailable"}),
            ("beta", "eu-west", "2"),
        ],
    )
    plan = plan_route(snap(m), request(), key())
    assert slots(plan) == [("beta", "eu-west")]
    err = error_of(plan_route, snap(m), request(route={"provider": "alpha"}), key())
    assert (err.status, err.code) == (503, "provider_disabled")


def test_unavailable_slots_are_skipped_and_all_unhealthy_is_a_503_with_retry_after():
    down = SlotHealth(SlotState.UNAVAILABLE, time.time() + 30, 1, "http_500", 1.0, None)
    health = {("alpha", "eu-west"): down}
    plan = plan_route(snap(TWO_REGIONS), request(route={"region": "eu-west"}), key(), health=health)
    assert slots(plan) == [("beta", "eu-west")]
    assert {
        "model": "m/one",
        "provider": "alpha",
        "region": "eu-west",
        "why": "unhealthy:http_500",
    } in plan.trace.removed
    health[("beta", "eu-west")] = down
    err = error_of(
        plan_route, snap(TWO_REGIONS), request(route={"region": "eu-west"}), key(), health=health
    )
    assert (err.status, err.code) == (503, "all_candidates_unhealthy")
    assert 1 <= int(err.headers["Retry-After"]) <= 31


def test_a_recently_failed_slot_scores_below_an_equal_healthy_one():
    m = model("m/one", [("alpha", "eu-west", "1"), ("beta", "eu-west", "1")])
    degraded = SlotHealth(SlotState.DEGRADED, 0, 2, "timeout", 0.6, None)
    plan = plan_route(snap(m), request(), key(), health={("alpha", "eu-west"): degraded})
    assert slots(plan)[0] == ("beta", "eu-west")
    assert plan.trace.winner_reason == "healthiest"


def test_auto_with_a_need_no_model_meets_is_503_capability_not_served():
    err = error_of(
        plan_route,
        snap(TWO_REGIONS),
        request("lowrouter/auto", response_format={"type": "json_object"}),
        key(),
    )
    assert (err.status, err.code) == (503, "capability_not_served")


def test_explicit_model_too_small_for_the_request_is_a_400():
    tiny = model("m/tiny", [("alpha", "eu-west", "1")], context=16)
    err = error_of(plan_route, snap(tiny), request("m/tiny", max_tokens=100), key())
    assert (err.status, err.code) == (400, "context_length_exceeded")


# --- Auto models ---------------------------------------------------------------------------------

SMALL = model("m/small", [("alpha", "eu-west", "3")], params="1")
LARGE_CHEAP = model("m/large", [("beta", "eu-west", "0.5")], params="70")
VISION = model("m/vision", [("alpha", "eu-west", "5")], params="12", caps=ALL_CAPS)


def test_auto_picks_the_smallest_capable_model():
    plan = plan_route(snap(SMALL, LARGE_CHEAP, VISION), request("lowrouter/auto"), key())
    assert plan.model.id == "m/small"
    assert plan.trace.winner_reason == "smallest_model"


def test_auto_with_an_image_picks_the_smallest_vision_model():
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,x"}}]}]
    plan = plan_route(
        snap(SMALL, LARGE_CHEAP, VISION), request("lowrouter/auto", messages=image), key()
    )
    assert plan.model.id == "m/vision"


def test_auto_cheap_picks_the_cheapest_capable_model():
    plan = plan_route(snap(SMALL, LARGE_CHEAP, VISION), request("lowrouter/auto-cheap"), key())
    assert plan.model.id == "m/large"
    assert plan.trace.winner_reason == "cheapest"


def test_auto_respects_the_keys_model_allowlist():
    plan = plan_route(snap(SMALL, LARGE_CHEAP), request("lowrouter/auto"), key(models=("m/large",)))
    assert plan.model.id == "m/large"


# --- Tie-break ------------------------------------------------------------------------------------

TIED = model(
    "m/tied", [("alpha", "eu-west", "1"), ("beta", "eu-west", "1"), ("delta", "eu-west", "1")]
)


def test_ties_are_sticky_per_user():
    picks = {
        slots(plan_route(snap(TIED), request("m/tied", user="user-42"), key()))[0]
        for _ in range(10)
    }
    assert len(picks) == 1
    plan = plan_route(snap(TIED), request("m/tied", user="user-42"), key())
    assert plan.trace.winner_reason == "sticky"
    assert len(plan.trace.tied) == 3
    spread = {
        slots(plan_route(snap(TIED), request("m/tied", user=f"u{i}"), key()))[0] for i in range(30)
    }
    assert len(spread) > 1


def test_ties_without_a_user_are_broken_at_random():
    rng = random.Random(7)
    picks = [slots(plan_route(snap(TIED), request("m/tied"), key(), rng=rng))[0] for _ in range(30)]
    assert len(set(picks)) > 1
    assert (
        plan_route(snap(TIED), request("m/tied"), key(), rng=rng).trace.winner_reason
        == "random_tie"
    )


# --- Carbon (needs the eco context, which the database seeds) -------------------------------------


@pytest.fixture
def eco(db):
    return load_eco_context()


def test_prefer_low_carbon_moves_traffic_to_the_cleaner_region(eco):
    m = model("m/one", [("alpha", "eu-central", "1.00"), ("alpha", "eu-north", "2.00")])
    plain = plan_route(snap(m, eco=eco), request(), key())
    assert slots(plain)[0] == ("alpha", "eu-central")
    green = plan_route(snap(m, eco=eco), request(route={"prefer_low_carbon": True}), key())
    assert slots(green)[0] == ("alpha", "eu-north")
    assert green.trace.winner_reason == "lowest_carbon"
    assert (
        green.trace.candidates[0]["carbon_g_per_1k_tokens"]
        < green.trace.candidates[1]["carbon_g_per_1k_tokens"]
    )
    # The key's and the account's preference count too when the request says nothing.
    assert slots(plan_route(snap(m, eco=eco), request(), key(prefer_low_carbon=True)))[0] == (
        "alpha",
        "eu-north",
    )


def test_all_else_equal_the_cleaner_region_wins(eco):
    m = model("m/one", [("alpha", "eu-central", "1"), ("alpha", "eu-north", "1")])
    plan = plan_route(snap(m, eco=eco), request(), key())
    assert slots(plan)[0] == ("alpha", "eu-north")


def test_very_high_grid_regions_are_deprioritised_unless_pinned(eco):
    m = model("m/one", [("alpha", "india", "0.8"), ("beta", "eu-west", "1")])
    plan = plan_route(snap(m, eco=eco), request(), key())
    assert slots(plan)[0] == ("beta", "eu-west")
    assert plan.trace.candidates[1]["terms"]["high_grid"] > 0
    pinned = plan_route(snap(m, eco=eco), request(route={"region": "india"}), key())
    assert slots(pinned) == [("alpha", "india")]


def test_without_an_eco_context_carbon_is_neutral():
    m = model("m/one", [("alpha", "india", "1"), ("beta", "eu-west", "1")])
    plan = plan_route(snap(m), request(user="same"), key())
    assert plan.trace.winner_reason == "sticky"


# --- No database query per request ----------------------------------------------------------------


@pytest.mark.django_db
def test_routing_adds_no_database_query_once_the_snapshot_and_policies_are_warm():
    save_policy(account_id=_account(), preferred_region="eu-west")
    account_id = _account()
    snapshot = load_snapshot()
    get_policy(account_id)  # warm: loads every policy once
    with CaptureQueriesContext(connection) as queries:
        policy = get_policy(account_id)
        for body in ({}, {"route": {"prefer_low_carbon": True}}, {"provider": {"sort": "price"}}):
            # An empty test catalogue answers 503: still no query.
            with contextlib.suppress(ApiError):
                plan_route(
                    snapshot,
                    request("lowrouter/auto", **body),
                    key(account_id=account_id),
                    policy=policy,
                )
    assert policy.preferred_region == "eu-west"
    assert len(queries) == 0, [q["sql"] for q in queries]


def _account() -> int:
    from accounts.models import User

    user = User.objects.filter(email="policy@example.com").first() or User.objects.create_user(
        email="policy@example.com", password="x"
    )
    return user.pk


def test_an_account_that_prefers_the_cheapest_gets_auto_cheaps_choice():
    policy = AccountPolicy(account_id=1, prefer_cheapest=True)
    plan = plan_route(
        snap(SMALL, LARGE_CHEAP, VISION), request("lowrouter/auto"), key(), policy=policy
    )
    assert plan.model.id == "m/large"
    assert plan.trace.winner_reason == "cheapest"
    assert plan.trace.constraints["account"]["prefer_cheapest"] is True


def test_a_request_sort_outranks_the_accounts_cheapest_preference():
    policy = AccountPolicy(account_id=1, prefer_cheapest=True)
    plan = plan_route(
        snap(SMALL, LARGE_CHEAP, VISION),
        request("lowrouter/auto", provider={"sort": "latency"}),
        key(),
        policy=policy,
    )
    assert plan.trace.winner_reason != "cheapest"
