"""The formulas, one function per methodology kind, computed only from a stored ``inputs`` dict.

``estimate_request`` builds the inputs and calls the same function as ``recompute``, so a stored
estimate is reproducible by construction. Pure: no DB, no I/O.
"""

import math
from dataclasses import dataclass
from typing import Any

from ecologits.impacts.llm import compute_llm_impacts
from ecologits.utils.range_value import RangeValue

# The EcoLogits 0.11.3 constants, stored as the coefficients of version ecologits-0.11.3 (the
# keys are compute_llm_impacts keyword arguments, so they pass straight through).
ECOLOGITS_0_11_3_CONSTANTS: dict[str, float] = {
    "model_quantization_bits": 16,
    "gpu_energy_alpha": 1.1665273170451914e-06,
    "gpu_energy_beta": -0.011205921025579175,
    "gpu_energy_gamma": 4.052928146734005e-05,
    "latency_alpha": 0.0006785088094353663,
    "latency_beta": 0.0003119310311688259,
    "latency_gamma": 0.019473717579473387,
    "gpu_memory": 80,
    "gpu_embodied_gwp": 273,
    "server_gpu_count": 8,
    "server_power": 1.2,
    "server_embodied_gwp": 5700,
    "server_lifetime": 3 * 365 * 24 * 60 * 60,
    "batch_size": 64,
}

# Data-centre PUE and on-site WUE (L/kWh) per provider, from EcoLogits 0.11.3's provider
# config; a [min, max] pair is a range. Providers EcoLogits does not know get "default" (its
# generic-hosting values), which the methodology page says.
ECOLOGITS_0_11_3_DATACENTERS: dict[str, dict[str, Any]] = {
    "openai": {"pue": 1.2, "wue": 0.569},
    "anthropic": {"pue": [1.09, 1.14], "wue": [0.13, 0.999]},
    "mistral": {"pue": 1.16, "wue": 0.09},
    "mistralai": {"pue": 1.16, "wue": 0.09},
    "google": {"pue": 1.09, "wue": 0.999},
    "google_genai": {"pue": 1.09, "wue": 0.999},
    "cohere": {"pue": 1.09, "wue": 0.999},
    "huggingface": {"pue": [1.09, 1.14], "wue": [0.13, 0.99]},
    "default": {"pue": [1.09, 1.14], "wue": [0.13, 0.99]},
}


@dataclass(frozen=True)
class Computed:
    energy_wh: float
    carbon_g: float
    extra: dict[str, Any]


def compute_linear_params(inputs: dict[str, Any]) -> Computed:
    """energy_wh = (alpha * P_active + beta) * total_tokens; carbon_g = energy_wh * grid / 1000."""
    coeffs = inputs["coefficients"]
    p_active = float(inputs["active_params_b"])
    energy_wh = (coeffs["alpha"] * p_active + coeffs["beta"]) * inputs["total_tokens"]
    carbon_g = energy_wh * inputs["grid_g_per_kwh"] / 1000
    return Computed(energy_wh=energy_wh, carbon_g=carbon_g, extra={})


def datacenter_for(provider: str, datacenters: dict[str, Any]) -> dict[str, Any]:
    return datacenters.get(provider, datacenters["default"])


def _value_or_range(value: float | list[float]) -> float | RangeValue:
    if isinstance(value, list):
        return RangeValue(min=value[0], max=value[1])
    return value


def _span(value: float | RangeValue, scale: float) -> dict[str, float]:
    if isinstance(value, RangeValue):
        return {"min": value.min * scale, "max": value.max * scale}
    return {"min": value * scale, "max": value * scale}


def _mid(span: dict[str, float]) -> float:
    return (span["min"] + span["max"]) / 2


def compute_ecologits(inputs: dict[str, Any]) -> Computed:
    """EcoLogits' current LLM inference model via its own code, with our grid and provider data.

    Only output tokens count; the measured latency caps the generation time; PUE/WUE come from
    the provider; the grid factor and the off-site water factor from the serving region.
    """
    coeffs = inputs["coefficients"]
    p_active = float(inputs["active_params_b"])
    p_total = float(inputs["total_params_b"] or inputs["active_params_b"])
    latency = inputs["latency_s"]
    impacts = compute_llm_impacts(
        model_active_parameter_count=p_active,
        model_total_parameter_count=p_total,
        output_token_count=inputs["completion_tokens"],
        request_latency=math.inf if latency is None else float(latency),
        # Abiotic depletion and primary energy are not reported, so their factors are zero.
        if_electricity_mix_adpe=0.0,
        if_electricity_mix_pe=0.0,
        if_electricity_mix_gwp=inputs["grid_g_per_kwh"] / 1000,
        if_electricity_mix_wue=inputs["grid_wue_offsite_l_per_kwh"],
        datacenter_pue=_value_or_range(inputs["datacenter_pue"]),
        datacenter_wue=_value_or_range(inputs["datacenter_wue"]),
        **coeffs["constants"],
    )
    energy = _span(impacts.energy.value, 1000)  # kWh -> Wh
    usage_gwp = _span(impacts.usage.gwp.value, 1000)  # kg -> g
    embodied_gwp = _span(impacts.embodied.gwp.value, 1000)
    total_gwp = _span(impacts.gwp.value, 1000)
    water = _span(impacts.wcf.value, 1)
    extra = {
        "energy_wh_range": energy,
        "carbon_g_range": usage_gwp,
        "embodied_carbon_g": {"value": _mid(embodied_gwp), **embodied_gwp},
        "total_carbon_g": {"value": _mid(total_gwp), **total_gwp},
        "water_l": {"value": _mid(water), **water},
    }
    return Computed(energy_wh=_mid(energy), carbon_g=_mid(usage_gwp), extra=extra)


COMPUTE_BY_KIND = {
    "linear-params": compute_linear_params,
    "ecologits": compute_ecologits,
}
