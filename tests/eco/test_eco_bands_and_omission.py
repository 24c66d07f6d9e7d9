from datetime import date
from decimal import Decimal

import pytest

from eco.estimate import EcoContext, estimate_request, load_eco_context, weaker_band
from eco.grid import is_grid_stale
from eco.models import GridRegion

V04 = "v0.4-2026-01"
ECOLOGITS = "ecologits-0.11.3"


def _estimate(ctx: EcoContext, **overrides: object):  # noqa: ANN202
    arguments = {
        "active_params_b": Decimal("8"),
        "params_accuracy": "accurate",
        "provider": "openai",
        "region": "eu-west",
        "prompt_tokens": 100,
        "completion_tokens": 100,
        "latency_s": 1.0,
    }
    arguments.update(overrides)
    return estimate_request(ctx, **arguments)


@pytest.mark.parametrize(
    ("bands", "weakest"),
    [
        (("accurate", "accurate"), "accurate"),
        (("accurate", "medium"), "medium"),
        (("medium", "accurate"), "medium"),
        (("gross", "accurate"), "gross"),
        (("medium", "gross"), "gross"),
        (("accurate", "nonsense"), "gross"),
    ],
)
def test_band_is_the_weaker_of_the_inputs(bands: tuple[str, str], weakest: str) -> None:
    assert weaker_band(*bands) == weakest


@pytest.mark.parametrize(
    ("params_band", "region", "expected"),
    [
        ("accurate", "eu-west", "accurate"),
        ("medium", "eu-west", "medium"),
        ("gross", "eu-west", "gross"),
        # A national average stands in for a sub-national region: medium at best.
        ("accurate", "us-east", "medium"),
        ("accurate", "cn-north", "medium"),
    ],
)
def test_estimate_band_combines_parameters_and_grid(
    fresh_ctx: EcoContext, params_band: str, region: str, expected: str
) -> None:
    assert _estimate(fresh_ctx, params_accuracy=params_band, region=region).accuracy == expected


def test_grid_data_older_than_12_months_drops_the_band_to_gross(
    fresh_ctx: EcoContext, stale_ctx: EcoContext
) -> None:
    assert _estimate(fresh_ctx).accuracy == "accurate"
    assert _estimate(stale_ctx).accuracy == "gross"
    # The EcoLogits mixes are dated 2024, so they go stale a year later.
    assert _estimate(stale_ctx, version=ECOLOGITS).accuracy == "accurate"
    later = load_eco_context(today=date(2026, 1, 1))
    assert _estimate(later, version=ECOLOGITS).accuracy == "gross"
    assert stale_ctx.grids[V04]["eu-west"].accuracy == "gross"


def test_staleness_boundary() -> None:
    assert not is_grid_stale(2023, today=date(2024, 12, 31))
    assert is_grid_stale(2023, today=date(2025, 1, 1))
    assert is_grid_stale(None, today=date(2024, 1, 1))


def test_operator_region_is_labelled_and_uses_its_own_band(db: None) -> None:
    GridRegion.objects.create(
        code="site", label="Our site", g_per_kwh=Decimal("100"), accuracy="medium", note="meter"
    )
    ctx = load_eco_context(today=date(2024, 6, 1))
    grid = ctx.grids[V04]["site"]
    assert grid.operator_set and grid.source.startswith("operator-set")
    estimate = _estimate(ctx, region="site")
    assert estimate.accuracy == "medium"
    assert estimate.inputs["grid_operator_set"] is True
    assert estimate.inputs["grid_g_per_kwh"] == 100.0


def test_shipped_local_region_is_operator_set_and_stale_dated(db: None) -> None:
    ctx = load_eco_context(today=date(2026, 11, 25))
    local = ctx.grids[V04]["local"]
    assert local.operator_set and local.g_per_kwh == 56.0
    assert local.accuracy == "gross"
    assert _estimate(ctx, region="local", params_accuracy="gross") is not None


@pytest.mark.parametrize("version", [V04, ECOLOGITS])
@pytest.mark.parametrize(
    "overrides",
    [
        {"active_params_b": None},
        {"active_params_b": Decimal("0")},
        {"prompt_tokens": 0, "completion_tokens": 0},
        {"region": "atlantis"},
    ],
    ids=["unknown-params", "zero-params", "no-tokens", "unknown-region"],
)
def test_estimate_is_omitted_not_faked(
    fresh_ctx: EcoContext, version: str, overrides: dict[str, object]
) -> None:
    assert _estimate(fresh_ctx, version=version, **overrides) is None


def test_ecologits_version_omits_a_request_without_output_tokens(fresh_ctx: EcoContext) -> None:
    assert _estimate(fresh_ctx, completion_tokens=0, version=ECOLOGITS) is None
    assert _estimate(fresh_ctx, completion_tokens=0, version=V04) is not None
