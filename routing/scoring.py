"""Score the candidates that survived every constraint, and break ties.

Price, size, latency and carbon are measured against the best candidate on a log scale:
``min(log2(value / best), 4) / 4``, so the best scores 0, twice the best 0.25, sixteen times or
more 1. Being relative to the best (not to the worst) keeps one outlier from flattening the
differences between the others. Each term is multiplied by its weight from
LOWROUTER_ROUTING_WEIGHTS; the cost is their sum and the score ``1 / (1 + cost)`` (higher wins).
Unknown values (no latency sample yet, no grid data) take the mean of the known ones, so they
neither win nor lose on that term.
Floats are fine here: scores rank candidates, no money is computed from them.
"""

import hashlib
import math
import random
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from catalog.models import ProviderStatus
from catalog.snapshot import ModelView, OfferingView
from eco.estimate import EcoContext, UnknownMethodology, grams_per_1k_tokens
from routing.health import HEALTHY, SlotHealth

# The term that separated the winner from the runner-up names why it won.
REASONS = {
    "price": "cheapest",
    "size": "smallest_model",
    "latency": "fastest",
    "carbon": "lowest_carbon",
    "health": "healthiest",
    "preferred_region": "preferred_region",
    "provider_order": "provider_order",
    "high_grid": "cleaner_grid",
}


@dataclass
class Candidate:
    model: ModelView
    offering: OfferingView
    health: SlotHealth = HEALTHY
    carbon_g_per_1k: float | None = None
    grid_g_per_kwh: float | None = None
    terms: dict[str, float] = field(default_factory=dict)
    score: float = 0.0

    @property
    def slot(self) -> tuple[str, str]:
        return (self.offering.provider_id, self.offering.region)

    @property
    def price_eur_per_1m(self) -> Decimal:
        o = self.offering
        return (o.prompt_eur or 0) + (o.completion_eur or 0) + 2 * self.model.platform_fee_eur

    def as_trace(self) -> dict:
        return {
            "model": self.model.id,
            "provider": self.offering.provider_id,
            "region": self.offering.region,
            "score": round(self.score, 4),
            "terms": {k: round(v, 4) for k, v in self.terms.items() if v},
            "price_eur_per_1m": str(self.price_eur_per_1m),
            "carbon_g_per_1k_tokens": None
            if self.carbon_g_per_1k is None
            else round(self.carbon_g_per_1k, 4),
            "latency_ms_p50": None
            if self.health.latency_ms is None
            else round(self.health.latency_ms),
            "health": self.health.state,
        }


@dataclass(frozen=True)
class Preferences:
    """What scoring weighs, gathered from the request, the key and the account."""

    cheap: bool = False  # lowrouter/auto-cheap or provider.sort=price: price dominates
    smallest: bool = False  # lowrouter/auto: model size dominates
    fast: bool = False  # provider.sort=latency
    prefer_low_carbon: bool = False
    preferred_region: str = ""
    provider_order: tuple[str, ...] = ()
    region_pinned: bool = False


# The eco context the figures below were computed for, and (params, provider, region) -> grams.
# A new catalogue or eco version is a new context object, which starts a new memo.
_carbon_memo: list = [None, {}]


def fill_carbon(candidates: list[Candidate], ctx: EcoContext | None) -> None:
    """Grams per 1K tokens and grid intensity per candidate, or None when unknown."""
    if ctx is None or ctx.current_version is None:
        return
    grids = ctx.grids.get(ctx.current_version, {})
    if _carbon_memo[0] is not ctx:
        _carbon_memo[:] = [ctx, {}]
    memo = _carbon_memo[1]
    for c in candidates:
        grid = grids.get(c.offering.region)
        c.grid_g_per_kwh = grid.g_per_kwh if grid else None
        key = (c.model.active_params_b, c.offering.provider_id, c.offering.region)
        if key not in memo:
            try:
                memo[key] = grams_per_1k_tokens(
                    ctx,
                    active_params_b=c.model.active_params_b,
                    provider=c.offering.provider_id,
                    region=c.offering.region,
                )
            except UnknownMethodology:
                memo[key] = None
        c.carbon_g_per_1k = memo[key]


RATIO_CAP_LOG2 = 4.0  # sixteen times the best is as bad as it gets
# Added to every latency before comparing: 3 ms against 5 ms is noise, not "66% slower", and
# must not break a tie (or a user's stickiness) that real differences would not.
LATENCY_FLOOR_MS = 100.0


def _relative(value: float, best: float) -> float:
    if value <= best:
        return 0.0
    if best <= 0:
        return 1.0
    return min(math.log2(value / best), RATIO_CAP_LOG2) / RATIO_CAP_LOG2


def _normalised(values: list[float | None]) -> list[float]:
    known = [v for v in values if v is not None]
    if not known:
        return [0.0 for _ in values]
    best = min(known)
    terms = [None if v is None else _relative(v, best) for v in values]
    known_terms = [t for t in terms if t is not None]
    neutral = sum(known_terms) / len(known_terms)
    return [neutral if t is None else t for t in terms]


def score_candidates(candidates: list[Candidate], prefs: Preferences) -> None:
    """Fill ``terms`` and ``score`` of every candidate."""
    w = settings.LOWROUTER_ROUTING_WEIGHTS
    price = _normalised([float(c.price_eur_per_1m) for c in candidates])
    size = _normalised(
        [
            None if c.model.active_params_b is None else float(c.model.active_params_b)
            for c in candidates
        ]
    )
    # A model of unknown size counts as the largest: auto never bets on an unknown.
    size = [
        1.0 if c.model.active_params_b is None else s for c, s in zip(candidates, size, strict=True)
    ]
    latency = _normalised(
        [
            None if c.health.latency_ms is None else c.health.latency_ms + LATENCY_FLOOR_MS
            for c in candidates
        ]
    )
    carbon = _normalised([c.carbon_g_per_1k for c in candidates])
    order = prefs.provider_order
    high_grid = settings.LOWROUTER_ROUTING_HIGH_GRID_G_PER_KWH
    for i, c in enumerate(candidates):
        degraded = c.offering.provider_status == ProviderStatus.DEGRADED
        terms = {
            "price": price[i] * (w["price_dominant"] if prefs.cheap else w["price"]),
            "size": size[i] * w["size"] if prefs.smallest else 0.0,
            "latency": latency[i] * (w["latency_dominant"] if prefs.fast else w["latency"]),
            "carbon": carbon[i]
            * (w["carbon_preferred"] if prefs.prefer_low_carbon else w["carbon"]),
            "health": max(c.health.penalty, 1.0 if degraded else 0.0) * w["health"],
            "preferred_region": w["preferred_region"]
            if prefs.preferred_region and c.offering.region != prefs.preferred_region
            else 0.0,
            "provider_order": (
                (
                    order.index(c.offering.provider_id)
                    if c.offering.provider_id in order
                    else len(order)
                )
                / len(order)
                * w["provider_order"]
                if order
                else 0.0
            ),
            # Very dirty grids are avoided unless the caller pinned that region on purpose.
            "high_grid": w["high_grid"]
            if not prefs.region_pinned
            and c.grid_g_per_kwh is not None
            and c.grid_g_per_kwh >= high_grid
            else 0.0,
        }
        c.terms = terms
        c.score = 1.0 / (1.0 + sum(terms.values()))


def _sticky_hash(user: str, c: Candidate) -> str:
    raw = f"{user}|{c.model.id}|{c.offering.provider_id}|{c.offering.region}"
    return hashlib.sha256(raw.encode()).hexdigest()


def rank_candidates(
    candidates: list[Candidate], *, user: str | None, rng: random.Random | None = None
) -> tuple[list[Candidate], str, list[Candidate]]:
    """Order the scored candidates best first; return them, why the first won, and the tie.

    Candidates within LOWROUTER_ROUTING_TIE_PERCENT of the best score are tied: a request with a
    ``user`` gets the tied candidate with the highest hash of (user, candidate) (rendezvous
    hashing: the same user keeps the same model and slot while the tie holds), others a random one.
    """
    ranked = sorted(
        candidates,
        key=lambda c: (-c.score, c.model.id, c.offering.provider_id, c.offering.region),
    )
    best = ranked[0]
    tie_floor = best.score * (1 - settings.LOWROUTER_ROUTING_TIE_PERCENT / 100)
    tied = [c for c in ranked if c.score >= tie_floor]
    if len(tied) > 1:
        if user:
            winner, reason = max(tied, key=lambda c: _sticky_hash(user, c)), "sticky"
        else:
            winner, reason = (rng or random).choice(tied), "random_tie"
        ranked.remove(winner)
        return [winner, *ranked], reason, tied
    if len(ranked) == 1:
        return ranked, "only_candidate", tied
    runner = ranked[1]
    gaps = {k: runner.terms.get(k, 0.0) - best.terms.get(k, 0.0) for k in best.terms}
    term = max(gaps, key=lambda k: gaps[k])
    return ranked, REASONS.get(term, term), tied
