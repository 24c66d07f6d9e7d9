"""The hot-path API: energy and carbon of one request, from a context loaded once per process.

``load_eco_context`` reads the database (methodology versions, operator regions) and the shipped
datasets; everything else here is pure and does no I/O, so it can run on the event loop.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from eco.grid import RegionGrid, build_region_table, load_grid_dataset
from eco.methodologies import COMPUTE_BY_KIND, datacenter_for
from eco.models import AccuracyBand, GridRegion, MethodologyKind, MethodologyVersion

BAND_ORDER = [AccuracyBand.ACCURATE, AccuracyBand.MEDIUM, AccuracyBand.GROSS]
ECO_FIELDS = ("energy_wh", "carbon_g", "carbon_per_1k_tokens_g", "accuracy", "methodology_version")


# Bumped on every admin change to versions or regions; a process whose cached context was loaded
# under another value reloads it (the same pattern as the catalogue snapshot).
CONTEXT_VERSION_CACHE_KEY = "eco:context-version"


def mark_eco_changed() -> None:
    try:
        cache.incr(CONTEXT_VERSION_CACHE_KEY)
    except ValueError:
        cache.set(CONTEXT_VERSION_CACHE_KEY, 1, timeout=None)


def read_eco_context_version() -> int:
    return cache.get(CONTEXT_VERSION_CACHE_KEY, 0)


class UnknownMethodology(LookupError):
    pass


@dataclass(frozen=True)
class Methodology:
    version: str
    kind: str
    coefficients: Mapping[str, Any]
    grid_dataset: str
    grid_source: str
    grid_year: int
    params_dataset_version: str


@dataclass(frozen=True)
class EcoContext:
    current_version: str | None
    methodologies: Mapping[str, Methodology]
    # version -> region -> grid; each version reads its own grid dataset.
    grids: Mapping[str, Mapping[str, RegionGrid]]
    as_of: date

    def methodology(self, version: str | None) -> Methodology:
        key = version or self.current_version
        if key is None or key not in self.methodologies:
            raise UnknownMethodology(f"unknown methodology version {key!r}")
        return self.methodologies[key]


@dataclass(frozen=True)
class EcoEstimate:
    energy_wh: float
    carbon_g: float
    carbon_per_1k_tokens_g: float
    accuracy: str
    methodology_version: str
    extra: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)

    def block(self) -> dict[str, Any]:
        """The response's ``eco`` block: the five documented fields, then whatever the
        methodology adds (it never overrides the five)."""
        fields = {name: getattr(self, name) for name in ECO_FIELDS}
        return {**self.extra, **fields}


def weaker_band(*bands: str) -> str:
    """The weakest of the given bands; an unrecognised band counts as gross."""
    ranks = [
        BAND_ORDER.index(AccuracyBand(b)) if b in BAND_ORDER else len(BAND_ORDER) - 1 for b in bands
    ]
    return BAND_ORDER[max(ranks)].value


def load_eco_context(*, today: date | None = None) -> EcoContext:
    """Sync; reads the DB. Call once per process (and again after an admin change)."""
    today = today or timezone.now().date()
    operator_regions = list(
        GridRegion.objects.values(
            "code", "g_per_kwh", "reference_country", "data_year", "accuracy", "note"
        )
    )
    methodologies: dict[str, Methodology] = {}
    grids: dict[str, Mapping[str, RegionGrid]] = {}
    current = None
    for row in MethodologyVersion.objects.all():
        methodologies[row.version] = Methodology(
            version=row.version,
            kind=row.kind,
            coefficients=MappingProxyType(dict(row.coefficients)),
            grid_dataset=row.grid_dataset,
            grid_source=row.grid_source,
            grid_year=row.grid_year,
            params_dataset_version=row.params_dataset_version,
        )
        table = build_region_table(
            load_grid_dataset(row.grid_dataset), operator_regions, today=today
        )
        grids[row.version] = MappingProxyType(table)
        if row.is_current:
            current = row.version
    return EcoContext(
        current_version=current,
        methodologies=MappingProxyType(methodologies),
        grids=MappingProxyType(grids),
        as_of=today,
    )


def build_inputs(
    ctx: EcoContext,
    *,
    active_params_b: Decimal | None,
    params_accuracy: str,
    provider: str,
    region: str,
    prompt_tokens: int,
    completion_tokens: int,
    latency_s: float | None,
    version: str | None = None,
    total_params_b: Decimal | None = None,
) -> dict[str, Any] | None:
    """Everything a methodology needs, as JSON-safe values; None when there is nothing honest
    to compute (unknown parameters, no tokens, a region without grid data)."""
    method = ctx.methodology(version)
    total_tokens = prompt_tokens + completion_tokens
    if active_params_b is None or active_params_b <= 0 or total_tokens <= 0:
        return None
    # EcoLogits counts output tokens only: with none there is no number to give, not a zero.
    if method.kind == MethodologyKind.ECOLOGITS and completion_tokens <= 0:
        return None
    grid = ctx.grids[method.version].get(region)
    if grid is None:
        return None
    inputs: dict[str, Any] = {
        "methodology_version": method.version,
        "kind": method.kind,
        # Only what the formula reads; the provider table is resolved into datacenter_* below.
        "coefficients": {
            k: _plain(v) for k, v in method.coefficients.items() if k != "datacenters"
        },
        "active_params_b": str(active_params_b),
        "total_params_b": None if total_params_b is None else str(total_params_b),
        "params_accuracy": params_accuracy,
        "provider": provider,
        "region": region,
        "grid_g_per_kwh": grid.g_per_kwh,
        "grid_source": grid.source,
        "grid_year": grid.year,
        "grid_accuracy": grid.accuracy,
        "grid_operator_set": grid.operator_set,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": total_tokens,
        "latency_s": latency_s,
    }
    if method.kind == MethodologyKind.ECOLOGITS:
        datacenter = datacenter_for(provider, method.coefficients["datacenters"])
        inputs["datacenter_pue"] = datacenter["pue"]
        inputs["datacenter_wue"] = datacenter["wue"]
        inputs["grid_wue_offsite_l_per_kwh"] = grid.wue_offsite_l_per_kwh
    return inputs


def recompute(inputs: dict[str, Any]) -> EcoEstimate:
    """The estimate from a stored ``inputs`` dict, with the coefficients stored in it."""
    computed = COMPUTE_BY_KIND[inputs["kind"]](inputs)
    return EcoEstimate(
        energy_wh=computed.energy_wh,
        carbon_g=computed.carbon_g,
        carbon_per_1k_tokens_g=computed.carbon_g * 1000 / inputs["total_tokens"],
        accuracy=weaker_band(inputs["params_accuracy"], inputs["grid_accuracy"]),
        methodology_version=inputs["methodology_version"],
        extra=computed.extra,
        inputs=inputs,
    )


def estimate_request(
    ctx: EcoContext,
    *,
    active_params_b: Decimal | None,
    params_accuracy: str,
    provider: str,
    region: str,
    prompt_tokens: int,
    completion_tokens: int,
    latency_s: float | None,
    version: str | None = None,
    total_params_b: Decimal | None = None,
) -> EcoEstimate | None:
    """The eco estimate of one request, or None when it must be omitted."""
    inputs = build_inputs(
        ctx,
        active_params_b=active_params_b,
        params_accuracy=params_accuracy,
        provider=provider,
        region=region,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_s=latency_s,
        version=version,
        total_params_b=total_params_b,
    )
    return None if inputs is None else recompute(inputs)


def grams_per_1k_tokens(
    ctx: EcoContext,
    *,
    active_params_b: Decimal | None,
    provider: str,
    region: str,
    version: str | None = None,
    total_params_b: Decimal | None = None,
) -> float | None:
    """gCO2e per 1,000 tokens served by (provider, region): the router's carbon score input.
    Tokens are the ones the methodology counts (total for the linear formula, output for
    EcoLogits, with no latency cap)."""
    estimate = estimate_request(
        ctx,
        active_params_b=active_params_b,
        params_accuracy=AccuracyBand.GROSS,
        provider=provider,
        region=region,
        prompt_tokens=0,
        completion_tokens=1000,
        latency_s=None,
        version=version,
        total_params_b=total_params_b,
    )
    return None if estimate is None else estimate.carbon_g


def energy_wh_per_1k_tokens(
    ctx: EcoContext,
    *,
    active_params_b: Decimal | None,
    version: str | None = None,
    total_params_b: Decimal | None = None,
) -> float | None:
    """Wh per 1,000 tokens, independent of the grid (provider PUE: the default data centre)."""
    method = ctx.methodology(version)
    if active_params_b is None or active_params_b <= 0:
        return None
    # Energy does not depend on the grid, so any region of this version's table will do.
    region = next(iter(ctx.grids[method.version]), None)
    if region is None:
        return None
    estimate = estimate_request(
        ctx,
        active_params_b=active_params_b,
        params_accuracy=AccuracyBand.GROSS,
        provider="default",
        region=region,
        prompt_tokens=0,
        completion_tokens=1000,
        latency_s=None,
        version=method.version,
        total_params_b=total_params_b,
    )
    return None if estimate is None else estimate.energy_wh


def _plain(value: Any) -> Any:
    """A deep, JSON-safe copy of read-only mappings (MappingProxyType is not serialisable)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def estimates_match(a: EcoEstimate, b: EcoEstimate) -> bool:
    """Equal up to floating-point rounding, field by field."""
    pairs = [
        (a.energy_wh, b.energy_wh),
        (a.carbon_g, b.carbon_g),
        (a.carbon_per_1k_tokens_g, b.carbon_per_1k_tokens_g),
    ]
    return (
        all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15) for x, y in pairs)
        and a.accuracy == b.accuracy
        and a.methodology_version == b.methodology_version
    )
