"""The eco estimate of a served request, from the snapshot's in-memory eco context."""

import logging

from billing.costs import Usage
from catalog.snapshot import ModelView, OfferingView
from eco.estimate import EcoContext, UnknownMethodology, estimate_request

log = logging.getLogger(__name__)


def estimate(
    ctx: EcoContext | None,
    model: ModelView,
    offering: OfferingView,
    usage: Usage,
    duration_ms: int | None,
) -> dict | None:
    """Fields for the generation record, plus the response's ``eco`` block under "block".

    None (the estimate is omitted, never faked) when no tokens were consumed, the model's
    parameter count is unknown, or no methodology applies.
    """
    if ctx is None or usage.total_tokens == 0:
        return None
    try:
        est = estimate_request(
            ctx,
            active_params_b=model.active_params_b,
            params_accuracy=model.params_accuracy,
            provider=offering.provider_id,
            region=offering.region,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            latency_s=duration_ms / 1000 if duration_ms else None,
        )
    except UnknownMethodology:
        log.warning("no current eco methodology: estimate omitted")
        return None
    if est is None:
        return None
    return {
        "energy_wh": est.energy_wh,
        "carbon_g": est.carbon_g,
        "carbon_per_1k_tokens_g": est.carbon_per_1k_tokens_g,
        "accuracy": est.accuracy,
        "methodology_version": est.methodology_version,
        "inputs": est.inputs,
        "block": est.block(),
    }
