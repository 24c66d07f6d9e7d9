"""The numbers behind each dashboard widget, read from the daily usage aggregates.

The aggregates (``billing.DailyUsage``: account, UTC day, model, key, provider, region) are
written by settlement with each record, so every widget is current to the last settled request
and reads a few hundred rows at most, however many records the account has. Only the recent
transactions table reads the records themselves (newest first, by the (account, created_at)
index).
"""

import calendar
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce

from accounts.models import Preferences
from billing.models import DailyUsage, Generation, Wallet
from billing.usage import day_bounds
from catalog.snapshot import CatalogSnapshot
from console.filters import Filters
from eco.replay import Baseline, ReplayOutcome, ReplayResult, UsageRow, replay_usage
from keys.models import ApiKey

TOP_MODELS_DAYS = 30
RECENT_ROWS = 50


def usage_rows(account_id: int, filters: Filters, *, first: date, last: date) -> QuerySet:
    """The account's aggregate rows for ``first``..``last``, narrowed by the model and key
    filters (every widget but the balance honours them)."""
    rows = DailyUsage.objects.filter(account_id=account_id, day__gte=first, day__lte=last)
    if filters.model:
        rows = rows.filter(model=filters.model)
    if filters.key is not None:
        rows = rows.filter(key_id=filters.key)
    return rows


_SUMS = {
    "requests_sum": Coalesce(Sum("requests"), 0),
    "prompt_sum": Coalesce(Sum("prompt_tokens"), 0),
    "completion_sum": Coalesce(Sum("completion_tokens"), 0),
    "cost_sum": Coalesce(Sum("cost_micros"), 0),
    "energy_sum": Coalesce(Sum("energy_wh"), 0.0),
    "carbon_sum": Coalesce(Sum("carbon_g"), 0.0),
}


# --- Credit balance ------------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceWidget:
    balance_micros: int
    spent_month_micros: int
    # Whether the balance lasts to the end of the month at this month's daily burn rate.
    lasts_the_month: bool
    days_left_at_burn: int | None  # None: nothing spent yet this month


def balance_widget(account_id: int, today: date) -> BalanceWidget:
    """Always live and whole-account: the filters do not apply to the balance."""
    balance = (
        Wallet.objects.filter(account_id=account_id)
        .values_list("balance_micros", flat=True)
        .first()
        or 0
    )
    month_start = today.replace(day=1)
    spent = DailyUsage.objects.filter(account_id=account_id, day__gte=month_start).aggregate(
        s=Coalesce(Sum("cost_micros"), 0)
    )["s"]
    days_elapsed = (today - month_start).days + 1
    days_in_month = calendar.monthrange(today.year, today.month)[1]
    days_remaining = days_in_month - days_elapsed
    if spent <= 0:
        return BalanceWidget(balance, 0, True, None)
    burn_per_day = Decimal(spent) / days_elapsed
    days_left = int(Decimal(balance) / burn_per_day)
    return BalanceWidget(balance, spent, days_left >= days_remaining, days_left)


# --- Per-model bars (usage today, top models) ----------------------------------------------


@dataclass(frozen=True)
class ModelBar:
    model: str
    tokens: int
    cost_micros: int
    share: float  # of the largest bar, 0..1, for the bar's length


@dataclass(frozen=True)
class ModelBars:
    tokens: int
    cost_micros: int
    bars: list[ModelBar]


def _model_bars(rows: QuerySet) -> ModelBars:
    per_model = list(
        rows.values("model")
        .annotate(**_SUMS)
        .order_by("-prompt_sum", "model")
        .values_list("model", "prompt_sum", "completion_sum", "cost_sum")
    )
    totals = [(m, p + c, cost) for m, p, c, cost in per_model]
    totals.sort(key=lambda t: (-t[1], t[0]))
    totals = [t for t in totals if t[1] > 0 or t[2] > 0]
    top = max((t for _, t, _ in totals), default=0) or 1
    return ModelBars(
        tokens=sum(t for _, t, _ in totals),
        cost_micros=sum(c for _, _, c in totals),
        bars=[ModelBar(m, t, c, t / top) for m, t, c in totals],
    )


def usage_today(account_id: int, filters: Filters, today: date) -> ModelBars:
    return _model_bars(usage_rows(account_id, filters, first=today, last=today))


def top_models(account_id: int, filters: Filters, today: date) -> ModelBars:
    """A fixed 30-day window ending today, whatever the date filter says, so the ranking is
    stable across page loads; only models with usage are listed."""
    first = today - timedelta(days=TOP_MODELS_DAYS - 1)
    return _model_bars(usage_rows(account_id, filters, first=first, last=today))


# --- Eco impact ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EcoWidget:
    energy_wh: float
    carbon_g: float
    carbon_per_1k_g: float | None
    baseline_model: str
    baseline_chosen_by: str  # "account" or "operator default"
    comparison: ReplayResult | None
    refusal: str = ""

    @property
    def saved(self) -> bool:
        return self.comparison is not None and self.comparison.outcome == ReplayOutcome.SAVING

    @property
    def gap_g(self) -> float:
        """How much more the actual usage emitted than the baseline would have (when it did)."""
        return -self.comparison.difference_g if self.comparison is not None else 0.0

    @property
    def gap(self) -> bool:
        return self.comparison is not None and self.comparison.outcome == ReplayOutcome.EXTRA


class _EcoTotals(TypedDict):
    """The fields of an EcoWidget that do not depend on the baseline comparison."""

    energy_wh: float
    carbon_g: float
    carbon_per_1k_g: float | None
    baseline_model: str
    baseline_chosen_by: str


def eco_widget(account_id: int, filters: Filters, snapshot: CatalogSnapshot) -> EcoWidget:
    rows = usage_rows(account_id, filters, first=filters.start, last=filters.end)
    sums = rows.aggregate(**_SUMS)
    tokens = sums["prompt_sum"] + sums["completion_sum"]
    energy, carbon = float(sums["energy_sum"]), float(sums["carbon_sum"])
    per_1k = carbon * 1000 / tokens if tokens and carbon else None
    chosen = Preferences.of(account_id).eco_baseline_model
    baseline_id, chosen_by = (
        (chosen, "your choice")
        if chosen
        else (settings.LOWROUTER_ECO_BASELINE_MODEL, "operator default")
    )
    common: _EcoTotals = {
        "energy_wh": energy,
        "carbon_g": carbon,
        "carbon_per_1k_g": per_1k,
        "baseline_model": baseline_id,
        "baseline_chosen_by": chosen_by,
    }
    baseline_model = snapshot.model(baseline_id)
    if snapshot.eco is None or baseline_model is None or not baseline_model.offerings:
        return EcoWidget(
            comparison=None, refusal="the baseline model is not in the catalogue", **common
        )
    slices = (
        rows.exclude(carbon_g=0)
        .values("model", "provider", "region")
        .annotate(p=Sum("prompt_tokens"), c=Sum("completion_tokens"))
        .order_by()
    )
    usage = []
    for s in slices:
        model = snapshot.model(s["model"])
        if model is None:
            continue
        usage.append(
            UsageRow(
                active_params_b=model.active_params_b,
                params_accuracy=model.params_accuracy,
                provider=s["provider"],
                region=s["region"],
                prompt_tokens=s["p"],
                completion_tokens=s["c"],
            )
        )
    baseline = Baseline(
        active_params_b=baseline_model.active_params_b,
        params_accuracy=baseline_model.params_accuracy,
        provider=baseline_model.offerings[0].provider_id,
    )
    result = replay_usage(snapshot.eco, rows=usage, baseline=baseline)
    if result.outcome == ReplayOutcome.REFUSED:
        return EcoWidget(comparison=None, refusal=result.reason, **common)
    return EcoWidget(comparison=result, **common)


# --- Per-day charts and the provider donut -------------------------------------------------


@dataclass
class DailySeries:
    days: list[date]
    tokens_by_model: dict[str, list[int]] = field(default_factory=dict)
    cost_by_day: list[int] = field(default_factory=list)


def daily_series(account_id: int, filters: Filters) -> DailySeries:
    days = filters.days
    index = {d: i for i, d in enumerate(days)}
    series = DailySeries(days=days, cost_by_day=[0] * len(days))
    rows = (
        usage_rows(account_id, filters, first=filters.start, last=filters.end)
        .values("day", "model")
        .annotate(**_SUMS)
        .order_by("model", "day")
    )
    for row in rows:
        i = index[row["day"]]
        tokens = series.tokens_by_model.setdefault(row["model"], [0] * len(days))
        tokens[i] += row["prompt_sum"] + row["completion_sum"]
        series.cost_by_day[i] += row["cost_sum"]
    return series


@dataclass(frozen=True)
class Share:
    name: str
    requests: int
    fraction: float


def provider_shares(account_id: int, filters: Filters) -> list[Share]:
    """Requests served per provider in the range (requests that reached no provider are left
    out: the donut answers "who served my traffic")."""
    rows = (
        usage_rows(account_id, filters, first=filters.start, last=filters.end)
        .exclude(provider="")
        .values("provider")
        .annotate(n=Sum("requests"))
        .order_by("-n", "provider")
    )
    counts = [(r["provider"], r["n"]) for r in rows if r["n"]]
    total = sum(n for _, n in counts) or 1
    return [Share(name, n, n / total) for name, n in counts]


# --- Recent transactions -------------------------------------------------------------------


def transactions(account_id: int, filters: Filters) -> QuerySet[Generation]:
    """The filtered records of the range, in the table's order (all of them: the table takes
    the first ``RECENT_ROWS``, the export up to its cap)."""
    start, end = day_bounds(filters.start, filters.end)
    records = Generation.objects.filter(
        account_id=account_id, created_at__gte=start, created_at__lt=end
    )
    if filters.model:
        records = records.filter(resolved_model=filters.model)
    if filters.key is not None:
        records = records.filter(key_id=filters.key)
    if filters.provider:
        records = records.filter(provider=filters.provider)
    if filters.region:
        records = records.filter(region=filters.region)
    if filters.status:
        records = records.filter(status=filters.status)
    return records.select_related("key").order_by(*filters.order_by)


def filter_choices(account_id: int, filters: Filters) -> dict[str, list]:
    """The values the filter menus offer: what the account's aggregates of the range hold."""
    rows = DailyUsage.objects.filter(
        account_id=account_id, day__gte=filters.start, day__lte=filters.end
    )
    return {
        "models": sorted(set(rows.values_list("model", flat=True))),
        "providers": sorted(set(rows.exclude(provider="").values_list("provider", flat=True))),
        "regions": sorted(set(rows.exclude(region="").values_list("region", flat=True))),
        "keys": list(
            ApiKey.objects.filter(account_id=account_id)
            .order_by("name", "id")
            .values_list("id", "name", "revoked_at")
        ),
    }


def requests_in_range(account_id: int, filters: Filters) -> int:
    return usage_rows(account_id, filters, first=filters.start, last=filters.end).aggregate(
        n=Coalesce(Sum("requests"), 0)
    )["n"]
