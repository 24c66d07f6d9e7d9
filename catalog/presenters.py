"""The public representation of catalogue entries, shared by the API and the model browser."""

from decimal import Decimal

from catalog.snapshot import ModelView, OfferingView
from eco.estimate import EcoContext, energy_wh_per_1k_tokens, grams_per_1k_tokens

_PER_1K = Decimal(1000)


def per_1k(per_1m: Decimal | None) -> str | None:
    """A per-1M price as a per-1K decimal string (the unit the docs and pages quote)."""
    if per_1m is None:
        return None
    return str((per_1m / _PER_1K).quantize(Decimal("0.00000001")).normalize())


def _eco_per_1k(eco: EcoContext | None, model: ModelView, o: OfferingView) -> dict | None:
    """Energy and carbon per 1K tokens of this model in this region, current methodology."""
    if eco is None or eco.current_version is None or model.active_params_b is None:
        return None
    carbon = grams_per_1k_tokens(
        eco, active_params_b=model.active_params_b, provider=o.provider_id, region=o.region
    )
    energy = energy_wh_per_1k_tokens(eco, active_params_b=model.active_params_b)
    if carbon is None and energy is None:
        return None
    return {
        "energy_wh_per_1k_tokens": energy,
        "carbon_g_per_1k_tokens": carbon,
        "methodology_version": eco.current_version,
    }


def offering_to_api(model: ModelView, o: OfferingView, eco: EcoContext | None = None) -> dict:
    fee = model.platform_fee_eur
    return {
        "eco": _eco_per_1k(eco, model, o),
        "provider": o.provider_id,
        "region": o.region,
        "available": o.usable,
        "unavailable_reason": o.unavailable_reason or None,
        "billing_currency": o.currency,
        "pricing_eur_per_1k": {
            "prompt": per_1k(o.prompt_eur + fee) if o.prompt_eur is not None else None,
            "completion": per_1k(o.completion_eur + fee) if o.completion_eur is not None else None,
            "cached_prompt": (
                per_1k(o.cached_prompt_eur + fee) if o.cached_prompt_eur is not None else None
            ),
            "platform_fee": per_1k(fee),
        },
    }


def model_to_api(model: ModelView, eco: EcoContext | None = None) -> dict:
    offerings = [offering_to_api(model, o, eco) for o in model.offerings]
    usable = [o for o in model.offerings if o.usable]
    cheapest = min(usable, key=lambda o: o.price_sum_eur, default=None)
    return {
        "id": model.id,
        "object": "model",
        "created": 0,
        "owned_by": model.owner,
        "name": model.display_name,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "capabilities": list(model.capabilities),
        "regions": model.regions,
        "pricing_eur_per_1k": offerings[model.offerings.index(cheapest)]["pricing_eur_per_1k"]
        if cheapest
        else None,
        "offerings": offerings,
        "eco": {
            "active_params_b": (
                float(model.active_params_b) if model.active_params_b is not None else None
            ),
            "accuracy": model.params_accuracy,
            "nominal": model.params_nominal,
            "energy_wh_per_1k_tokens": (
                energy_wh_per_1k_tokens(eco, active_params_b=model.active_params_b)
                if eco is not None and eco.current_version and model.active_params_b is not None
                else None
            ),
        },
        "lifecycle": {
            "status": model.lifecycle,
            "sunset_at": model.sunset_at.isoformat() if model.sunset_at else None,
            "replacement": model.replacement or None,
        },
    }
