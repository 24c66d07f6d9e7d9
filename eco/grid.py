"""Grid carbon intensity per region, from the dated datasets shipped in ``eco/data``.

Countries come from a dataset (annual averages); regions are population-weighted averages of
their countries (``eco/data/regions.json``). Operator-defined regions (``GridRegion`` rows)
override or extend the shipped ones. Everything here runs at context load, never per request.
"""

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"
ECOLOGITS_DATASET_PREFIX = "ecologits-"
WORLD_ZONE = "WOR"


@dataclass(frozen=True)
class RegionGrid:
    region: str
    g_per_kwh: float
    # Off-site water factor of the mix (L/kWh); only the EcoLogits datasets carry one.
    wue_offsite_l_per_kwh: float | None
    source: str
    year: int | None
    accuracy: str
    operator_set: bool
    note: str = ""


@dataclass(frozen=True)
class CountryFactors:
    g_per_kwh: float
    wue_offsite_l_per_kwh: float | None


@dataclass(frozen=True)
class GridDataset:
    key: str
    source: str
    year: int
    # ISO 3166 alpha-2 country -> factors.
    countries: dict[str, CountryFactors]


def is_grid_stale(year: int | None, *, today: date) -> bool:
    """An annual average for year Y is dated 31 Dec Y; it is stale once more than 12 months
    older than today, i.e. from 1 Jan Y+2. An unknown year counts as stale."""
    if year is None:
        return True
    return today > date(year + 1, 12, 31)


@cache
def load_region_definitions() -> dict[str, Any]:
    return json.loads((DATA_DIR / "regions.json").read_text())


@cache
def load_grid_dataset(key: str) -> GridDataset:
    if key.startswith(ECOLOGITS_DATASET_PREFIX):
        return _load_ecologits_mixes(key)
    path = DATA_DIR / f"grid_{key.replace('-', '_')}.json"
    raw = json.loads(path.read_text())
    countries = {
        code: CountryFactors(g_per_kwh=float(value), wue_offsite_l_per_kwh=None)
        for code, value in raw["countries"].items()
    }
    return GridDataset(
        key=raw["key"],
        source=f"{raw['source']} ({raw['licence']})",
        year=raw["year"],
        countries=countries,
    )


def _load_ecologits_mixes(key: str) -> GridDataset:
    # The mixes ship inside the pinned ecologits wheel and are read from disk: no network.
    import ecologits
    from ecologits.electricity_mix_repository import electricity_mixes

    pinned = key.removeprefix(ECOLOGITS_DATASET_PREFIX)
    if ecologits.__version__ != pinned:
        raise RuntimeError(
            f"grid dataset {key} needs ecologits=={pinned}, got {ecologits.__version__}"
        )
    iso3 = load_region_definitions()["iso3"]
    countries = {}
    for alpha2, alpha3 in iso3.items():
        mix = electricity_mixes.find_electricity_mix(zone=alpha3)
        if mix is not None:
            countries[alpha2] = CountryFactors(
                g_per_kwh=mix.gwp * 1000, wue_offsite_l_per_kwh=mix.wue
            )
    world = electricity_mixes.find_electricity_mix(zone=WORLD_ZONE)
    assert world is not None  # EcoLogits always has the world mix
    countries["WORLD"] = CountryFactors(g_per_kwh=world.gwp * 1000, wue_offsite_l_per_kwh=world.wue)
    return GridDataset(
        key=key,
        source=f"EcoLogits {pinned} electricity mixes (GWP: Ember via Our World in Data, "
        "CC BY 4.0; water: WRI)",
        # EcoLogits does not state the year; its values match OWID's 2024 series (inferred).
        year=2024,
        countries=countries,
    )


def aggregate_countries(dataset: GridDataset, weights: dict[str, float]) -> CountryFactors:
    """Population-weighted average of the countries' factors."""
    total = math.fsum(weights.values())
    g = math.fsum(dataset.countries[c].g_per_kwh * w for c, w in weights.items()) / total
    wues = [dataset.countries[c].wue_offsite_l_per_kwh for c in weights]
    known = [v for v in wues if v is not None]
    wue = None
    if len(known) == len(wues):
        wue = math.fsum(v * w for v, w in zip(known, weights.values(), strict=True)) / total
    return CountryFactors(g_per_kwh=g, wue_offsite_l_per_kwh=wue)


def build_region_table(
    dataset: GridDataset, operator_regions: Sequence[Mapping[str, Any]], *, today: date
) -> dict[str, RegionGrid]:
    """Every region's grid for one dataset. ``operator_regions`` are ``GridRegion`` rows as
    dicts (values()), so this stays free of the ORM and testable on plain data."""
    stale = is_grid_stale(dataset.year, today=today)
    table: dict[str, RegionGrid] = {}
    for code, region in load_region_definitions()["regions"].items():
        factors = aggregate_countries(dataset, region["countries"])
        table[code] = RegionGrid(
            region=code,
            g_per_kwh=factors.g_per_kwh,
            wue_offsite_l_per_kwh=factors.wue_offsite_l_per_kwh,
            source=dataset.source,
            year=dataset.year,
            accuracy="gross" if stale else region["accuracy"],
            operator_set=False,
            note=region.get("note", ""),
        )
    for row in operator_regions:
        ref = dataset.countries.get(row["reference_country"] or "", dataset.countries.get("WORLD"))
        year = row["data_year"]
        table[row["code"]] = RegionGrid(
            region=row["code"],
            g_per_kwh=float(row["g_per_kwh"]),
            wue_offsite_l_per_kwh=ref.wue_offsite_l_per_kwh if ref else None,
            source=f"operator-set: {row['note']}" if row["note"] else "operator-set",
            year=year,
            accuracy="gross"
            if year is not None and is_grid_stale(year, today=today)
            else row["accuracy"],
            operator_set=True,
            note=row["note"],
        )
    return table
