"""Replay a set of usage against a baseline model, for the dashboard's eco comparison.

Both sides are computed with the same methodology version, so the comparison is within one
version as the limits page requires. When the baseline runs in each row's own region, the grid
factor is the same on both sides and cancels out of the comparison; only the parameter counts
differ, so only their bands decide whether the comparison is worth showing. Nothing here ever
says "saved" unless the baseline is the higher of the two.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import models

from eco.estimate import EcoContext, estimate_request, weaker_band
from eco.models import AccuracyBand


class ReplayOutcome(models.TextChoices):
    SAVING = "saving"  # the baseline would have emitted more
    EXTRA = "extra"  # the baseline would have emitted less
    EQUAL = "equal"
    REFUSED = "refused"


@dataclass(frozen=True)
class UsageRow:
    active_params_b: Decimal | None
    params_accuracy: str
    provider: str
    region: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float | None = None
    total_params_b: Decimal | None = None


@dataclass(frozen=True)
class Baseline:
    active_params_b: Decimal | None
    params_accuracy: str
    provider: str
    # None: the baseline is served from each row's own region (like for like on the grid).
    region: str | None = None
    total_params_b: Decimal | None = None


@dataclass(frozen=True)
class ReplayResult:
    outcome: str
    reason: str
    methodology_version: str
    accuracy: str
    rows_compared: int
    rows_skipped: int
    actual_carbon_g: float
    baseline_carbon_g: float
    actual_energy_wh: float
    baseline_energy_wh: float

    @property
    def difference_g(self) -> float:
        """Baseline minus actual: positive only for a saving."""
        return self.baseline_carbon_g - self.actual_carbon_g


def usage_row_from_inputs(inputs: dict[str, Any]) -> UsageRow:
    """A replayable row from a generation's stored ``eco_inputs``."""
    total = inputs.get("total_params_b")
    return UsageRow(
        active_params_b=Decimal(inputs["active_params_b"]),
        params_accuracy=inputs["params_accuracy"],
        provider=inputs["provider"],
        region=inputs["region"],
        prompt_tokens=inputs["prompt_tokens"],
        completion_tokens=inputs["completion_tokens"],
        latency_s=inputs.get("latency_s"),
        total_params_b=None if total is None else Decimal(total),
    )


def replay_usage(
    ctx: EcoContext, *, rows: Iterable[UsageRow], baseline: Baseline, version: str | None = None
) -> ReplayResult:
    method = ctx.methodology(version)
    actual_g: list[float] = []
    baseline_g: list[float] = []
    actual_wh: list[float] = []
    baseline_wh: list[float] = []
    bands = [baseline.params_accuracy]
    skipped = 0
    for row in rows:
        actual = estimate_request(
            ctx,
            active_params_b=row.active_params_b,
            params_accuracy=row.params_accuracy,
            provider=row.provider,
            region=row.region,
            total_params_b=row.total_params_b,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            latency_s=row.latency_s,
            version=method.version,
        )
        other = estimate_request(
            ctx,
            active_params_b=baseline.active_params_b,
            params_accuracy=baseline.params_accuracy,
            provider=baseline.provider,
            region=baseline.region or row.region,
            total_params_b=baseline.total_params_b,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            latency_s=row.latency_s,
            version=method.version,
        )
        if actual is None or other is None:
            skipped += 1
            continue
        actual_g.append(actual.carbon_g)
        baseline_g.append(other.carbon_g)
        actual_wh.append(actual.energy_wh)
        baseline_wh.append(other.energy_wh)
        bands.append(row.params_accuracy)
        if baseline.region is not None:
            # Different grids on the two sides: their uncertainty no longer cancels.
            bands.append(actual.inputs["grid_accuracy"])
            bands.append(other.inputs["grid_accuracy"])
    accuracy = weaker_band(*bands)
    actual_total, baseline_total = math.fsum(actual_g), math.fsum(baseline_g)

    def result(outcome: str, reason: str = "") -> ReplayResult:
        return ReplayResult(
            outcome=outcome,
            reason=reason,
            methodology_version=method.version,
            accuracy=accuracy,
            rows_compared=len(actual_g),
            rows_skipped=skipped,
            actual_carbon_g=actual_total,
            baseline_carbon_g=baseline_total,
            actual_energy_wh=math.fsum(actual_wh),
            baseline_energy_wh=math.fsum(baseline_wh),
        )

    if baseline.active_params_b is None:
        return result(ReplayOutcome.REFUSED, "baseline parameters unknown")
    if not actual_g:
        return result(ReplayOutcome.REFUSED, "no usage with an eco estimate")
    if accuracy == AccuracyBand.GROSS:
        return result(ReplayOutcome.REFUSED, "confidence too low to compare (gross band)")
    if math.isclose(actual_total, baseline_total, rel_tol=1e-9):
        return result(ReplayOutcome.EQUAL)
    if baseline_total > actual_total:
        return result(ReplayOutcome.SAVING)
    return result(ReplayOutcome.EXTRA)
