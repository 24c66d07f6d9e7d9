"""Choose where a request goes: the model, then the ordered offerings to try.

Everything here is in memory (the catalogue snapshot); nothing queries the database.
"""

from dataclasses import dataclass, field

from catalog.snapshot import CatalogSnapshot, ModelView, OfferingView
from keys.auth import KeyContext
from routing.errors import ApiError
from routing.validation import ChatRequest

AUTO_MODELS = frozenset({"lowrouter/auto", "lowrouter/auto-cheap"})

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
    trace: dict = field(default_factory=dict)


def _total_price(o: OfferingView) -> float:
    return float((o.prompt_eur or 0) + (o.completion_eur or 0))


def _resolve_model(snapshot: CatalogSnapshot, req: ChatRequest, key: KeyContext) -> ModelView:
    if req.model in AUTO_MODELS:
        capable = [
            m
            for m in snapshot.models.values()
            if key.allows_model(m.id)
            and req.needs <= set(m.capabilities)
            and any(o.usable for o in m.offerings)
        ]
        if not capable:
            raise ApiError(503, "no_capable_model", "No available model can serve this request.")
        # The smallest capable model by default; the cheapest one for auto-cheap.
        if req.model == "lowrouter/auto-cheap":
            return min(capable, key=lambda m: (min(_total_price(o) for o in m.offerings), m.id))
        return min(capable, key=lambda m: (float(m.active_params_b or 10**6), m.id))
    model = snapshot.model(req.model)
    if model is None:
        raise ApiError(
            404,
            "model_not_found",
            f"The model '{req.model}' does not exist. GET /api/v1/models lists the models.",
            param="model",
        )
    if not key.allows_model(model.id):
        raise ApiError(
            403,
            "model_not_allowed",
            f"API key '{key.key_name}' may not use the model '{model.id}'.",
            param="model",
        )
    return model


def plan_route(snapshot: CatalogSnapshot, req: ChatRequest, key: KeyContext) -> RoutePlan:
    model = _resolve_model(snapshot, req, key)
    missing = req.needs - set(model.capabilities)
    if missing:
        raise ApiError(
            400,
            "capability_not_supported",
            f"The model '{model.id}' does not support: {', '.join(sorted(missing))}.",
            param="model",
        )
    region = key.region or req.route.get("region") or ""
    if key.region and req.route.get("region") and req.route["region"] != key.region:
        raise ApiError(
            400,
            "region_conflict",
            f"The request asks for region '{req.route['region']}' but API key "
            f"'{key.key_name}' is pinned to '{key.region}'.",
            param="route.region",
        )
    removed: list[dict] = []
    candidates = []
    for o in model.offerings:
        if region and o.region != region:
            removed.append({"provider": o.provider_id, "region": o.region, "why": "region_pin"})
        elif not o.usable:
            removed.append(
                {"provider": o.provider_id, "region": o.region, "why": o.unavailable_reason}
            )
        else:
            candidates.append(o)
    if not candidates:
        if region and not any(o.region == region for o in model.offerings):
            raise ApiError(
                503,
                "no_provider_in_region",
                f"No provider serves '{model.id}' in the pinned region '{region}'.",
            )
        reasons = sorted({r["why"] for r in removed if r["why"] != "region_pin"})
        detail = "; ".join(_UNAVAILABLE_MESSAGES.get(r, r) for r in reasons)
        raise ApiError(
            503,
            reasons[0] if len(reasons) == 1 else "no_available_provider",
            f"The model '{model.id}' is not available right now ({detail}).",
        )
    candidates.sort(key=lambda o: (_total_price(o), o.provider_id, o.region))
    trace = {
        "requested_model": req.model,
        "resolved_model": model.id,
        "constraints": {"region": region or None},
        "candidates": [{"provider": o.provider_id, "region": o.region} for o in candidates],
        "removed": removed,
        "attempts": [],
        "winner_reason": "pinned" if region else "cheapest",
    }
    return RoutePlan(model=model, candidates=candidates, trace=trace)
