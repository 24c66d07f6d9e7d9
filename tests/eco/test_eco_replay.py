from decimal import Decimal

import pytest

from eco.estimate import EcoContext, estimate_request
from eco.replay import Baseline, ReplayOutcome, UsageRow, replay_usage, usage_row_from_inputs


def _rows(band: str = "accurate", params: str = "8", n: int = 3) -> list[UsageRow]:
    return [
        UsageRow(
            active_params_b=Decimal(params),
            params_accuracy=band,
            provider="mistral",
            region="eu-west",
            prompt_tokens=100 * (i + 1),
            completion_tokens=50,
            latency_s=2.0,
        )
        for i in range(n)
    ]


def test_a_bigger_baseline_is_framed_as_a_saving(fresh_ctx: EcoContext) -> None:
    result = replay_usage(
        fresh_ctx,
        rows=_rows(),
        baseline=Baseline(active_params_b=Decimal("70"), params_accuracy="accurate", provider="x"),
    )
    assert result.outcome == ReplayOutcome.SAVING
    assert result.difference_g > 0
    assert result.rows_compared == 3 and result.methodology_version == "v0.4-2026-01"


def test_a_smaller_baseline_is_never_called_a_saving(fresh_ctx: EcoContext) -> None:
    result = replay_usage(
        fresh_ctx,
        rows=_rows(params="70"),
        baseline=Baseline(active_params_b=Decimal("8"), params_accuracy="accurate", provider="x"),
    )
    assert result.outcome == ReplayOutcome.EXTRA
    assert result.difference_g < 0


def test_same_model_baseline_is_equal(fresh_ctx: EcoContext) -> None:
    result = replay_usage(
        fresh_ctx,
        rows=_rows(),
        baseline=Baseline(active_params_b=Decimal("8"), params_accuracy="accurate", provider="x"),
    )
    assert result.outcome == ReplayOutcome.EQUAL


@pytest.mark.parametrize(
    ("rows_band", "baseline_band", "baseline_params"),
    [("gross", "accurate", "70"), ("accurate", "gross", "70"), ("accurate", "accurate", None)],
)
def test_replay_refuses_when_confidence_is_too_low(
    fresh_ctx: EcoContext, rows_band: str, baseline_band: str, baseline_params: str | None
) -> None:
    result = replay_usage(
        fresh_ctx,
        rows=_rows(band=rows_band),
        baseline=Baseline(
            active_params_b=None if baseline_params is None else Decimal(baseline_params),
            params_accuracy=baseline_band,
            provider="x",
        ),
    )
    assert result.outcome == ReplayOutcome.REFUSED
    assert result.reason


def test_replay_refuses_with_no_estimable_usage(fresh_ctx: EcoContext) -> None:
    rows = [UsageRow(None, "gross", "x", "eu-west", 10, 10)]
    result = replay_usage(
        fresh_ctx,
        rows=rows,
        baseline=Baseline(active_params_b=Decimal("8"), params_accuracy="accurate", provider="x"),
    )
    assert result.outcome == ReplayOutcome.REFUSED and result.rows_skipped == 1


def test_stale_grid_counts_only_when_the_baseline_changes_region(
    fresh_ctx: EcoContext, stale_ctx: EcoContext
) -> None:
    same_region = Baseline(active_params_b=Decimal("70"), params_accuracy="accurate", provider="x")
    other_region = Baseline(
        active_params_b=Decimal("70"), params_accuracy="accurate", provider="x", region="eu-north"
    )
    assert replay_usage(stale_ctx, rows=_rows(), baseline=same_region).outcome == "saving"
    assert replay_usage(stale_ctx, rows=_rows(), baseline=other_region).outcome == "refused"
    assert replay_usage(fresh_ctx, rows=_rows(), baseline=other_region).outcome != "refused"


def test_rows_can_come_from_stored_inputs(fresh_ctx: EcoContext) -> None:
    estimate = estimate_request(
        fresh_ctx,
        active_params_b=Decimal("8"),
        params_accuracy="accurate",
        provider="openai",
        region="eu-west",
        prompt_tokens=100,
        completion_tokens=100,
        latency_s=1.0,
    )
    assert estimate is not None
    row = usage_row_from_inputs(estimate.inputs)
    result = replay_usage(
        fresh_ctx,
        rows=[row],
        baseline=Baseline(active_params_b=Decimal("70"), params_accuracy="accurate", provider="x"),
    )
    assert result.actual_carbon_g == pytest.approx(estimate.carbon_g)
