import math
from decimal import Decimal

import ecologits
import pytest
from ecologits.impacts import llm as ecologits_llm
from ecologits.tracers.utils import PROVIDER_CONFIG_MAP, llm_impacts
from ecologits.utils.range_value import RangeValue

from eco.estimate import EcoContext, estimate_request
from eco.methodologies import ECOLOGITS_0_11_3_CONSTANTS, ECOLOGITS_0_11_3_DATACENTERS
from eco.models import MethodologyVersion

VERSION = "ecologits-0.11.3"


def _span(value: float | RangeValue) -> tuple[float, float]:
    if isinstance(value, RangeValue):
        return value.min, value.max
    return value, value


def test_the_pinned_library_is_installed_and_its_constants_are_the_stored_ones(db: None) -> None:
    assert ecologits.__version__ == "0.11.3"
    for name, value in ECOLOGITS_0_11_3_CONSTANTS.items():
        module_name = {
            "model_quantization_bits": "MODEL_QUANTIZATION_BITS",
            "gpu_memory": "GPU_MEMORY",
            "gpu_embodied_gwp": "GPU_EMBODIED_IMPACT_GWP",
            "server_gpu_count": "SERVER_GPUS",
            "server_power": "SERVER_POWER",
            "server_embodied_gwp": "SERVER_EMBODIED_IMPACT_GWP",
            "server_lifetime": "HARDWARE_LIFESPAN",
            "batch_size": "BATCH_SIZE",
        }.get(name, name.upper())
        assert getattr(ecologits_llm, module_name) == value, name
    stored = MethodologyVersion.objects.get(version=VERSION).coefficients
    assert stored["constants"] == ECOLOGITS_0_11_3_CONSTANTS
    assert stored["datacenters"] == ECOLOGITS_0_11_3_DATACENTERS
    for provider, config in PROVIDER_CONFIG_MAP.items():
        mine = ECOLOGITS_0_11_3_DATACENTERS[provider.replace("_hub", "")]
        assert _span(config.datacenter_pue) == _pair(mine["pue"]), provider
        assert _span(config.datacenter_wue) == _pair(mine["wue"]), provider


def _pair(value: float | list[float]) -> tuple[float, float]:
    return (value[0], value[1]) if isinstance(value, list) else (value, value)


@pytest.mark.parametrize(("tokens", "latency"), [(400, 5.0), (400, None), (1000, 2.5)])
def test_matches_ecologits_own_output_for_the_same_inputs(
    fresh_ctx: EcoContext, tokens: int, latency: float | None
) -> None:
    # mistral-small-latest in the 0.11.3 registry: MoE 119B total / 8B active, no TPS data.
    theirs = llm_impacts(
        "mistralai",
        "mistral-small-latest",
        tokens,
        math.inf if latency is None else latency,
        electricity_mix_zone="GBR",
    )
    mine = estimate_request(
        fresh_ctx,
        active_params_b=Decimal("8"),
        total_params_b=Decimal("119"),
        params_accuracy="accurate",
        provider="mistral",
        region="uk",
        prompt_tokens=50,
        completion_tokens=tokens,
        latency_s=latency,
        version=VERSION,
    )
    assert mine is not None
    assert mine.methodology_version == VERSION
    close = {"rel": 1e-12}
    assert mine.energy_wh == pytest.approx(theirs.energy.value * 1000, **close)
    assert mine.carbon_g == pytest.approx(theirs.usage.gwp.value * 1000, **close)
    assert mine.extra["embodied_carbon_g"]["value"] == pytest.approx(
        theirs.embodied.gwp.value * 1000, **close
    )
    assert mine.extra["total_carbon_g"]["value"] == pytest.approx(theirs.gwp.value * 1000, **close)
    assert mine.extra["water_l"]["value"] == pytest.approx(theirs.wcf.value, **close)
    assert mine.carbon_per_1k_tokens_g == pytest.approx(mine.carbon_g * 1000 / (tokens + 50))


def test_reference_intermediate_values_for_a_dense_8b_model(fresh_ctx: EcoContext) -> None:
    # Checked figures: dense 8B, 1000 output tokens, no latency cap, USA mix, PUE 1.2.
    estimate = estimate_request(
        fresh_ctx,
        active_params_b=Decimal("8"),
        params_accuracy="accurate",
        provider="openai",
        region="us-east",
        prompt_tokens=0,
        completion_tokens=1000,
        latency_s=None,
        version=VERSION,
    )
    assert estimate is not None
    assert estimate.energy_wh == pytest.approx(8.915e-2, rel=1e-3)
    assert estimate.carbon_g == pytest.approx(3.427e-2, rel=1e-3)
    assert estimate.extra["embodied_carbon_g"]["value"] == pytest.approx(7.30e-3, rel=1e-3)


def test_a_provider_pue_range_gives_an_energy_range(fresh_ctx: EcoContext) -> None:
    estimate = estimate_request(
        fresh_ctx,
        active_params_b=Decimal("44"),
        total_params_b=Decimal("440"),
        params_accuracy="gross",
        provider="anthropic",
        region="us-west",
        prompt_tokens=10,
        completion_tokens=500,
        latency_s=10.0,
        version=VERSION,
    )
    assert estimate is not None
    low, high = estimate.extra["energy_wh_range"]["min"], estimate.extra["energy_wh_range"]["max"]
    assert low < estimate.energy_wh < high
    assert estimate.energy_wh == pytest.approx((low + high) / 2)
    assert high / low == pytest.approx(1.14 / 1.09)
    # The five documented fields come first and are never renamed by the extra ones.
    assert list(estimate.block())[-5:] == [
        "energy_wh",
        "carbon_g",
        "carbon_per_1k_tokens_g",
        "accuracy",
        "methodology_version",
    ]


@pytest.mark.parametrize(("params", "ratio"), [(8, 48), (28, 69), (44, 82), (132, 114)])
def test_documented_coefficients_read_48_to_114_times_higher_per_token(
    params: int, ratio: int
) -> None:
    legacy = 8.91e-5 * params + 1.43e-3
    c = ECOLOGITS_0_11_3_CONSTANTS
    current = (
        c["gpu_energy_alpha"] * math.exp(c["gpu_energy_beta"] * c["batch_size"]) * params
        + c["gpu_energy_gamma"]
    )
    assert round(legacy / current) == ratio
