"""Choose where a request goes: the model, then the ordered offerings to try.

Decision order (docs/routing.md): the request's constraints (``route``, X-LowRouter-Region,
OpenRouter's ``provider``/``models``), then the key's policy, then the account's defaults, then
scoring. Each layer can only remove candidates, never bring back one an earlier layer removed;
a request that asks for something its key or account forbids gets a 400 saying which.

Everything here reads memory only: the catalogue snapshot, the account policies and the health
copy (both refreshed like the snapshot). Nothing queries the database per request.
"""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from catalog.models import WireFormat
from catalog.snapshot import CatalogSnapshot, ModelView, OfferingView
from keys.auth import KeyContext
from lowrouter.asyncdb import refresh_in_background, run_db
from routing import health as health_state
from routing import policies
from routing.constraints import RequestConstraints, conflict, parse_constraints
from routing.errors import ApiError
from routing.health import Slot, SlotHealth, SlotState
from routing.policies import NO_POLICY, AccountPolicy, get_policy
from routing.scoring import Candidate, Preferences, fill_carbon, rank_candidates, score_candidates
from routing.trace import RoutingTrace
from routing.validation import ChatRequest

AUTO = "lowrouter/auto"
AUTO_CHEAP = "lowrouter/auto-cheap"
AUTO_MODELS = frozenset({AUTO, AUTO_CHEAP})
# A typical BPE token covers about four bytes of text: the context-length check uses this
# estimate, not the (much larger) worst-case bound that the credit reservation uses.
BYTES_PER_TOKEN = 4

_UNAVAILABLE_MESSAGES = {
    "fx_unavailable": "no current ECB exchange rate for its billing currency",
    "provider_not_configured": "its provider has no credential configured",
    "provider_disabled": "its provider is disabled by the operator",
    "offering_disabled": "the offering is disabled by the operator",
}


@dataclass
class RoutePlan:
    model: ModelView
    candidates: list[OfferingView]
    trace: RoutingTrace
    # False when a region pin or fallback:false keeps failover inside the first region.
    other_regions_allowed: bool = False


@dataclass
class _Layers:
    request: RequestConstraints
    key: KeyContext
    account: AccountPolicy
    n: int = 1

    @property
    def region(self) -> str:
        return self.request.region or self.key.region

    @property
    def region_pinned_by(self) -> str:
        if self.request.region:
            return self.request.region_source
        return "key.region" if self.key.region else ""

    @property
    def provider_pinned(self) -> bool:
        return bool(self.request.providers is not None or self.account.fixed_provider)


# Filter steps, in decision order. Each returns "" to keep an offering or the constraint that
# removes it; the step's code is the 503 when it removes the last candidates.
@dataclass(frozen=True)
class _Step:
    name: str
    code: str
    test: Callable[[_Layers, OfferingView, dict[Slot, SlotHealth]], str]


def _choices(layers: _Layers, o: OfferingView, __: dict) -> str:
    # Messages answers one completion per request: n > 1 sent there would be billed as one
    # and answered as one, so such a request only goes to OpenAI-compatible upstreams.
    return "n" if layers.n > 1 and o.wire_format == WireFormat.ANTHROPIC else ""


def _operator(_: _Layers, o: OfferingView, __: dict) -> str:
    return o.unavailable_reason


def _request_provider(layers: _Layers, o: OfferingView, __: dict) -> str:
    r = layers.request
    if r.providers is not None and o.provider_id not in r.providers:
        return r.providers_source
    if o.provider_id in r.ignored:
        return "provider.ignore"
    return ""


def _request_region(layers: _Layers, o: OfferingView, __: dict) -> str:
    r = layers.request
    return r.region_source if r.region and o.region != r.region else ""


def _key_region(layers: _Layers, o: OfferingView, __: dict) -> str:
    return "key.region" if layers.key.region and o.region != layers.key.region else ""


def _account_provider(layers: _Layers, o: OfferingView, __: dict) -> str:
    a = layers.account
    if a.fixed_provider and o.provider_id != a.fixed_provider:
        return "account.fixed_provider"
    if a.provider_allowlist and o.provider_id not in a.provider_allowlist:
        return "account.provider_allowlist"
    if o.provider_id in a.provider_denylist:
        return "account.provider_denylist"
    return ""


def _price_ceiling(layers: _Layers, o: OfferingView, __: dict) -> str:
    r = layers.request
    if r.max_prompt is not None and (o.prompt_eur is None or o.prompt_eur > r.max_prompt):
        return "provider.max_price.prompt"
    if r.max_completion is not None and (
        o.completion_eur is None or o.completion_eur > r.max_completion
    ):
        return "provider.max_price.completion"
    return ""


def _healthy(_: _Layers, o: OfferingView, health: dict[Slot, SlotHealth]) -> str:
    h = health.get((o.provider_id, o.region))
    if h is not None and h.state == SlotState.UNAVAILABLE:
        return f"unhealthy:{h.reason or 'failing'}"
    return ""


# The operator's state is checked after the caller's limits, so that a pin to a provider or region
# whose only offering is switched off answers with that reason rather than "nothing there".
STEPS = (
    _Step("choices", "n_not_supported", _choices),
    _Step("request_provider", "no_allowed_provider", _request_provider),
    _Step("request_region", "no_provider_in_region", _request_region),
    _Step("key_region", "no_provider_in_region", _key_region),
    _Step("account_provider", "no_allowed_provider", _account_provider),
    _Step("price", "price_ceiling_too_low", _price_ceiling),
    _Step("operator", "", _operator),
    _Step("health", "all_candidates_unhealthy", _healthy),
)
_OPERATOR_STEP = next(i for i, step in enumerate(STEPS) if step.name == "operator")
_CAPABILITY_STEP = -1


def _layers_for(req: ChatRequest, key: KeyContext, policy: AccountPolicy, header: str | None):
    request = parse_constraints(req.body, req.model, header)
    if key.region and request.region and request.region != key.region:
        raise ApiError(
            400,
            "region_conflict",
            f"The request asks for region '{request.region}' (from {request.region_source}) "
            f"but API key '{key.key_name}' is pinned to '{key.region}'.",
            param="route.region",
        )
    allowed = request.providers
    if allowed is not None:
        a = policy
        remaining = {
            p
            for p in allowed
            if (not a.fixed_provider or p == a.fixed_provider)
            and (not a.provider_allowlist or p in a.provider_allowlist)
            and p not in a.provider_denylist
        }
        if not remaining:
            raise conflict(
                f"The request allows only {', '.join(sorted(allowed))} "
                f"({request.providers_source}), which this account's routing policy does not "
                "allow (fixed provider, allowlist or denylist).",
                request.providers_source.split("+")[0],
            )
    return _Layers(request=request, key=key, account=policy, n=req.n)


def _context_fits(req: ChatRequest, model: ModelView) -> bool:
    estimate = req.prompt_token_bound // BYTES_PER_TOKEN + (req.max_tokens or 0)
    return estimate <= model.context_window


def _past_sunset(model: ModelView, now: datetime) -> bool:
    """Deprecated models keep routing until their sunset, never after."""
    return model.sunset_at is not None and model.sunset_at <= now


def _model_list(snapshot: CatalogSnapshot, req: ChatRequest, layers: _Layers) -> list[ModelView]:
    key = layers.key
    now = datetime.now(UTC)
    if req.model in AUTO_MODELS:
        return [
            m
            for m in snapshot.models.values()
            if key.allows_model(m.id) and not _past_sunset(m, now)
        ]
    models = []
    for i, model_id in enumerate((req.model, *layers.request.fallback_models)):
        param = "model" if i == 0 else "models"
        model = snapshot.model(model_id)
        if model is None:
            raise ApiError(
                404,
                "model_not_found",
                f"The model '{model_id}' does not exist. GET /api/v1/models lists the models.",
                param=param,
            )
        if _past_sunset(model, now):
            hint = f" Use '{model.replacement}' instead." if model.replacement else ""
            raise ApiError(
                410,
                "model_deprecated",
                f"The model '{model.id}' was retired on {model.sunset_at:%Y-%m-%d}.{hint}",
                type="invalid_request_error",
                param=param,
            )
        if not key.allows_model(model.id):
            raise ApiError(
                403,
                "model_not_allowed",
                f"API key '{key.key_name}' may not use the model '{model.id}'.",
                param=param,
            )
        models.append(model)
    return models


def _filter(
    model: ModelView,
    req: ChatRequest,
    layers: _Layers,
    health: dict[Slot, SlotHealth],
    removed: list[dict],
) -> tuple[list[OfferingView], int, set[str]]:
    """The model's offerings that pass every step; also the furthest step that emptied the set
    and the operator reasons met (for the 503 message)."""
    missing = req.needs - set(model.capabilities)
    if missing or not _context_fits(req, model):
        why = "capability:" + ",".join(sorted(missing)) if missing else "context_length"
        removed.append({"model": model.id, "why": why})
        return [], _CAPABILITY_STEP, set()
    survivors = list(model.offerings)
    operator_reasons: set[str] = set()
    for index, step in enumerate(STEPS):
        kept = []
        for o in survivors:
            why = step.test(layers, o, health)
            if why:
                if index == _OPERATOR_STEP:
                    operator_reasons.add(why)
                removed.append(
                    {"model": model.id, "provider": o.provider_id, "region": o.region, "why": why}
                )
            else:
                kept.append(o)
        if not kept:
            return [], index, operator_reasons
        survivors = kept
    return survivors, len(STEPS), operator_reasons


def _nothing_eligible(
    req: ChatRequest,
    models: list[ModelView],
    layers: _Layers,
    furthest: int,
    operator_reasons: set[str],
    health: dict[Slot, SlotHealth],
) -> ApiError:
    names = ", ".join(m.id for m in models[:3]) + (", ..." if len(models) > 3 else "")
    if furthest == _CAPABILITY_STEP:
        if req.model not in AUTO_MODELS and len(models) == 1:
            model = models[0]
            missing = req.needs - set(model.capabilities)
            if missing:
                return ApiError(
                    400,
                    "capability_not_supported",
                    f"The model '{model.id}' does not support: {', '.join(sorted(missing))}.",
                    param="model",
                )
            return ApiError(
                400,
                "context_length_exceeded",
                f"The request (about {req.prompt_token_bound // BYTES_PER_TOKEN} prompt tokens "
                f"plus max_tokens) does not fit the {model.context_window}-token context of "
                f"'{model.id}'.",
                param="messages",
            )
        return ApiError(
            503,
            "capability_not_served",
            "No available model supports what this request needs ("
            + (", ".join(sorted(req.needs)) or "its context length")
            + ").",
        )
    if furthest == _OPERATOR_STEP:
        reasons = sorted(operator_reasons) or ["no_available_provider"]
        detail = "; ".join(_UNAVAILABLE_MESSAGES.get(r, r) for r in reasons)
        return ApiError(
            503,
            reasons[0] if len(reasons) == 1 else "no_available_provider",
            f"{names} is not available right now ({detail}).",
        )
    step = STEPS[furthest]
    if step.code == "n_not_supported":
        return ApiError(
            400,
            "invalid_request",
            f"'n' > 1 is not supported by the providers of {names} (Anthropic's Messages API "
            "answers one completion per request); send n=1, once per completion you need.",
            param="n",
        )
    if step.code == "no_provider_in_region":
        return ApiError(
            503,
            "no_provider_in_region",
            f"No provider serves {names} in the pinned region '{layers.region}' "
            f"(pinned by {layers.region_pinned_by}); the pin is never left.",
        )
    if step.code == "price_ceiling_too_low":
        return ApiError(
            503,
            "price_ceiling_too_low",
            f"Every provider of {names} costs more than 'provider.max_price' allows.",
        )
    if step.code == "all_candidates_unhealthy":
        untils = [h.until for h in health.values() if h.state == SlotState.UNAVAILABLE]
        wait = max(1, int(min(untils) - time.time()) + 1) if untils else 1
        return ApiError(
            503,
            "all_candidates_unhealthy",
            f"Every eligible provider of {names} is failing or rate limited right now; "
            "retry shortly.",
            headers={"Retry-After": str(wait)},
        )
    return ApiError(
        503,
        "no_allowed_provider",
        f"No provider of {names} is allowed by the request's provider constraints and the "
        "account's routing policy.",
    )


def _preferences(req: ChatRequest, layers: _Layers) -> Preferences:
    r = layers.request
    plc = r.prefer_low_carbon
    if plc is None:
        plc = layers.key.prefer_low_carbon or layers.account.prefer_low_carbon
    # An account that prefers the cheapest makes lowrouter/auto behave as lowrouter/auto-cheap
    # unless the request asks for an order of its own.
    cheap = (
        req.model == AUTO_CHEAP
        or r.sort == "price"
        or (not r.sort and not r.order and layers.account.prefer_cheapest)
    )
    return Preferences(
        cheap=cheap,
        smallest=req.model == AUTO and not cheap,
        fast=r.sort == "latency",
        prefer_low_carbon=plc,
        preferred_region="" if layers.region else layers.account.preferred_region,
        provider_order=r.order,
        region_pinned=bool(layers.region),
    )


def plan_route(
    snapshot: CatalogSnapshot,
    req: ChatRequest,
    key: KeyContext,
    *,
    policy: AccountPolicy = NO_POLICY,
    health: dict[Slot, SlotHealth] | None = None,
    region_header: str | None = None,
    rng: random.Random | None = None,
) -> RoutePlan:
    """Pure and in memory: the resolved model, its offerings best first, and the trace."""
    health = health or {}
    layers = _layers_for(req, key, policy, region_header)
    models = _model_list(snapshot, req, layers)
    removed: list[dict] = []
    survivors: list[Candidate] = []
    furthest, operator_reasons = _CAPABILITY_STEP, set()
    for model in models:
        kept, reached, reasons = _filter(model, req, layers, health, removed)
        operator_reasons |= reasons
        furthest = max(furthest, reached)
        survivors += [
            Candidate(model, o, health.get((o.provider_id, o.region), health_state.HEALTHY))
            for o in kept
        ]
        # An explicit model with a `models` list: the first model that can be served wins.
        if survivors and req.model not in AUTO_MODELS:
            break
    if not survivors:
        raise _nothing_eligible(req, models, layers, furthest, operator_reasons, health)

    fill_carbon(survivors, getattr(snapshot, "eco", None))
    prefs = _preferences(req, layers)
    score_candidates(survivors, prefs)
    ranked, reason, tied = rank_candidates(survivors, user=req.user, rng=rng)
    winner = ranked[0]
    if reason == "only_candidate" and (layers.region or layers.provider_pinned):
        reason = "pinned"
    # Failover stays with the winner's model: its prices are the ones reserved and billed.
    same_model = [c for c in ranked if c.model.id == winner.model.id]
    fallback = layers.request.fallback
    other_regions = fallback is not False and not layers.region
    trace = RoutingTrace(
        requested_model=req.model,
        resolved_model=winner.model.id,
        constraints={
            "request": layers.request.as_trace(),
            "key": {"region": key.region or None, "models": list(key.models) or None},
            "account": _account_trace(layers.account),
        },
        candidates=[c.as_trace() for c in ranked],
        removed=removed,
        winner_reason=reason,
        tied=[f"{c.model.id}@{c.offering.provider_id}/{c.offering.region}" for c in tied]
        if len(tied) > 1
        else [],
        failover={
            "other_regions": other_regions,
            "why": "allowed"
            if other_regions
            else (
                "fallback_false" if fallback is False else f"pinned_by:{layers.region_pinned_by}"
            ),
        },
    )
    return RoutePlan(
        model=winner.model,
        candidates=[c.offering for c in same_model],
        trace=trace,
        other_regions_allowed=other_regions,
    )


def _account_trace(policy: AccountPolicy) -> dict | None:
    if policy is NO_POLICY:
        return None
    return {
        "preferred_region": policy.preferred_region or None,
        "prefer_low_carbon": policy.prefer_low_carbon,
        "fixed_provider": policy.fixed_provider or None,
        "provider_allowlist": list(policy.provider_allowlist) or None,
        "provider_denylist": list(policy.provider_denylist) or None,
        "prefer_cheapest": policy.prefer_cheapest,
    }


_slots_cache: dict[int, tuple[object, list[Slot]]] = {}


def snapshot_slots(snapshot: CatalogSnapshot) -> list[Slot]:
    """Every routable (provider, region) slot of the snapshot (computed once per snapshot)."""
    cached = _slots_cache.get(id(snapshot))
    if cached is not None and cached[0] is snapshot:
        return cached[1]
    slots = sorted(
        {(o.provider_id, o.region) for m in snapshot.models.values() for o in m.offerings}
    )
    _slots_cache.clear()
    _slots_cache[id(snapshot)] = (snapshot, slots)
    return slots


async def aroute_request(
    snapshot: CatalogSnapshot,
    req: ChatRequest,
    key: KeyContext,
    *,
    region_header: str | None = None,
) -> RoutePlan:
    """``route_request`` for the event loop: computed right there from this process's copies of
    the policies and of slot health while they are fresh (nearly always) or just past their
    interval (then one background refresh reloads them, see ``refresh_in_background``); in a
    worker thread when a copy is missing or old and has to be fetched first."""
    slots = snapshot_slots(snapshot)
    if not (policies.is_fresh() and health_state.is_fresh(slots)):
        if not (policies.is_recent() and health_state.is_recent(slots)):
            return await run_db(route_request, snapshot, req, key, region_header=region_header)
        refresh_in_background("routing", partial(_refresh_copies, slots))
    return route_request(snapshot, req, key, region_header=region_header, refresh=False)


def _refresh_copies(slots: list[Slot]) -> None:
    policies.refreshed()
    health_state.read_health(slots)


def route_request(
    snapshot: CatalogSnapshot,
    req: ChatRequest,
    key: KeyContext,
    *,
    region_header: str | None = None,
    refresh: bool = True,
) -> RoutePlan:
    """plan_route with the account's policy and the shared health state, both from this
    process's copies while fresh (no database query; a cache round trip at most when stale;
    none with ``refresh=False``, which takes the copies as they are)."""
    policy = get_policy(key.account_id, refresh=refresh)
    health = health_state.read_health(snapshot_slots(snapshot), refresh=refresh)
    return plan_route(snapshot, req, key, policy=policy, health=health, region_header=region_header)
