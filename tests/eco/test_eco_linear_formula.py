import json
import math
from decimal import Decimal

import pytest

from eco.estimate import ECO_FIELDS, EcoContext, estimate_request

V04 = "v0.4-2026-01"


def test_worked_example_from_the_methodology_page(fresh_ctx: EcoContext) -> None:
    estimate = estimate_request(
        fresh_ctx,
        active_params_b=Decimal("8"),
        params_accuracy="medium",
        provider="openai",
        region="example",
        prompt_tokens=120,
        completion_tokens=80,
        latency_s=1.5,
    )
    assert estimate is not None
    assert estimate.methodology_version == V04
    assert round(estimate.energy_wh, 2) == 0.43
    assert estimate.energy_wh == pytest.approx(0.42856, rel=1e-12)
    assert round(estimate.carbon_g, 3) == 0.146
    assert round(estimate.carbon_per_1k_tokens_g, 2) == 0.73
    assert estimate.accuracy == "medium"


@pytest.mark.parametrize(
    ("params", "tokens", "grid"),
    [("8", 200, 340.0), ("70", 1000, 56.0), ("0.5", 3, 713.4), ("37", 12345, 30.1)],
)
def test_linear_formula_matches_hand_computation(
    db: None, params: str, tokens: int, grid: float
) -> None:
    from eco.estimate import load_eco_context
    from eco.models import GridRegion

    GridRegion.objects.create(code="hand", label="hand", g_per_kwh=Decimal(str(grid)))
    ctx = load_eco_context()
    estimate = estimate_request(
        ctx,
        active_params_b=Decimal(params),
        params_accuracy="accurate",
        provider="any",
        region="hand",
        prompt_tokens=tokens - tokens // 3,
        completion_tokens=tokens // 3,
        latency_s=None,
    )
    energy = (8.91e-5 * float(params) + 1.43e-3) * tokens
    carbon = energy * grid / 1000
    assert estimate is not None
    assert estimate.energy_wh == pytest.approx(energy, rel=1e-12)
    assert estimate.carbon_g == pytest.approx(carbon, rel=1e-12)
    assert estimate.carbon_per_1k_tokens_g == pytest.approx(carbon * 1000 / tokens, rel=1e-12)


def test_eu_west_is_the_population_weighted_average_of_its_countries(
    fresh_ctx: EcoContext,
) -> None:
    weights = {"FR": 68.2, "DE": 84.5, "NL": 17.9, "IE": 5.3, "BE": 11.8}
    values = {"FR": 56.0, "DE": 381.0, "NL": 267.6, "IE": 290.8, "BE": 138.1}
    expected = sum(values[c] * w for c, w in weights.items()) / sum(weights.values())
    grid = fresh_ctx.grids[V04]["eu-west"]
    assert grid.g_per_kwh == pytest.approx(expected, rel=1e-12)
    assert grid.year == 2023
    assert "Ember" in grid.source and "CC BY 4.0" in grid.source


def test_eco_block_has_the_five_documented_fields_and_is_json(fresh_ctx: EcoContext) -> None:
    estimate = estimate_request(
        fresh_ctx,
        active_params_b=Decimal("8"),
        params_accuracy="medium",
        provider="openai",
        region="eu-west",
        prompt_tokens=10,
        completion_tokens=10,
        latency_s=None,
    )
    assert estimate is not None
    block = estimate.block()
    assert tuple(block) == ECO_FIELDS
    json.dumps(block)
    json.dumps(estimate.inputs)


def test_inputs_let_a_user_recompute_by_hand(fresh_ctx: EcoContext) -> None:
    estimate = estimate_request(
        fresh_ctx,
        active_params_b=Decimal("8"),
        params_accuracy="medium",
        provider="openai",
        region="eu-west",
        prompt_tokens=150,
        completion_tokens=50,
        latency_s=None,
    )
    assert estimate is not None
    i = estimate.inputs
    by_hand = (
        (i["coefficients"]["alpha"] * float(i["active_params_b"]) + i["coefficients"]["beta"])
        * i["total_tokens"]
        * i["grid_g_per_kwh"]
        / 1000
    )
    assert math.isclose(by_hand, estimate.carbon_g, rel_tol=1e-12)
    assert {"grid_source", "grid_year", "methodology_version"} <= set(i)
