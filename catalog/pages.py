"""What the public catalogue pages show: prices in both currencies, the FX detail, eco figures.

The pages read the same in-memory snapshot as the gateway (so a listed price is the debited
price), plus the few rows the snapshot does not carry: the providers' published prices and the
FX inputs behind the conversion. Nothing here is on the request path.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from django.utils import timezone

from catalog import fx
from catalog.models import Currency, FxIngestRun, Offering, Provider
from catalog.snapshot import ModelView, OfferingView
from eco.estimate import (
    EcoContext,
    UnknownMethodology,
    energy_wh_per_1k_tokens,
    grams_per_1k_tokens,
    load_eco_context,
    read_eco_context_version,
)

_PER_1K = Decimal(1000)
SYMBOLS: dict[str, str] = {Currency.EUR: "€", Currency.USD: "$", Currency.CNY: "CN¥"}
UNAVAILABLE_TEXT = {
    "provider_disabled": "provider switched off",
    "offering_disabled": "switched off by the operator",
    "provider_not_configured": "provider not configured on this instance",
    "fx_unavailable": "no current ECB rate: listed, not routable",
}


# --- number formatting -----------------------------------------------------------------------


def format_significant(value: Decimal, digits: int = 3) -> str:
    """A small price readably: 2 decimals from 0.10 up, else ``digits`` significant figures."""
    if value == 0:
        return "0"
    if abs(value) >= Decimal("0.1"):
        return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    quantum = Decimal(1).scaleb(value.adjusted() - digits + 1)
    return format(value.quantize(quantum, rounding=ROUND_HALF_UP).normalize(), "f")


def format_published(value: Decimal) -> str:
    """A published price as the provider writes it: exact, at least two decimals."""
    text = format(value.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def money(currency: str, text: str) -> str:
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


# --- FX detail (the hover/focus text of a converted price) -----------------------------------


@dataclass(frozen=True)
class FxDetail:
    currency: str
    # 1 EUR = quote units of the currency, as published by the ECB on ecb_date.
    quote: Decimal | None
    ecb_date: date | None
    floor: Decimal | None
    floor_applied: bool
    markup_percent: Decimal
    multiplier: Decimal | None
    refreshed_at: datetime | None
    usable: bool

    @property
    def text(self) -> str:
        if self.quote is None or self.ecb_date is None:
            return (
                f"ECB rate for {self.currency} not yet available: no FX ingest has stored one, "
                "so this price is listed but not routable."
            )
        per_unit = Decimal(1) / self.quote
        parts = [
            f"ECB reference rate of {self.ecb_date:%d %b %Y}: 1 EUR = {self.quote.normalize():f} "
            f"{self.currency} (1 {self.currency} = {per_unit.quantize(Decimal('0.0001'))} EUR)."
        ]
        if self.floor_applied:
            parts.append(f"That is below the {self.floor} floor, so {self.floor} is used.")
        parts.append(f"Conversion markup {self.markup_percent.normalize():f} %")
        if self.multiplier is not None:
            parts[-1] += (
                f": 1 {self.currency} is billed as €{self.multiplier.quantize(Decimal('0.0001'))}."
            )
        else:
            parts[-1] += "."
        if self.refreshed_at is not None:
            parts.append(f"Last refreshed {self.refreshed_at:%d %b %Y, %H:%M} UTC.")
        if not self.usable:
            parts.append("This rate is out of date: the price is listed but not routable.")
        return " ".join(parts)


def read_fx_details(currencies: set[str]) -> dict[str, FxDetail]:
    """The rate, floor, markup and last refresh behind each non-EUR currency's EUR prices."""
    wanted = {c for c in currencies if c != Currency.EUR}
    if not wanted:
        return {}
    newest = fx.newest_rates()
    fresh = fx.fresh_rates()
    last_ok = FxIngestRun.objects.filter(ok=True).first()
    refreshed = last_ok.started_at.astimezone(UTC) if last_ok else None
    markup = fx.buffer_percent()
    details = {}
    for currency in wanted:
        rate = newest.get(currency)
        floor = fx.floor_for(currency)
        quote = rate.quote if rate else None
        details[currency] = FxDetail(
            currency=currency,
            quote=quote,
            ecb_date=rate.ecb_date if rate else None,
            floor=floor,
            floor_applied=bool(quote and floor is not None and Decimal(1) / quote < floor),
            markup_percent=markup,
            multiplier=fx.multiplier(currency, quote) if quote else None,
            refreshed_at=refreshed,
            usable=currency in fresh,
        )
    return details


# --- prices ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceCell:
    """One price component of one offering, in the two forms the pages show."""

    billed_per_1k: str | None  # EUR per 1K, platform fee included (what the balance pays)
    published: str | None  # "$0.15/M (€0.17 billed)", or "€0.15/M" for EUR-billed providers
    converted: bool  # True when published is a dual figure with an FX detail


def billed_per_1k(eur_per_1m: Decimal | None, fee: Decimal) -> str | None:
    """What 1k tokens are billed, fee included (None while there is no EUR price)."""
    return None if eur_per_1m is None else format_significant((eur_per_1m + fee) / _PER_1K)


def price_cell(
    source: Decimal | None, eur_per_1m: Decimal | None, fee: Decimal, currency: str
) -> PriceCell:
    billed = billed_per_1k(eur_per_1m, fee)
    if source is None:
        return PriceCell(billed_per_1k=billed, published=None, converted=False)
    if currency == Currency.EUR:
        return PriceCell(billed, money(currency, f"{format_published(source)}/M"), False)
    converted = (
        f"{money(Currency.EUR, format_significant(eur_per_1m, 2))} billed"
        if eur_per_1m is not None
        else "no EUR price yet"
    )
    return PriceCell(billed, f"{money(currency, format_published(source))}/M ({converted})", True)


@dataclass(frozen=True)
class OfferingRow:
    key: str  # unique per page, used for the tooltip ids
    model_id: str
    model_name: str
    provider_id: str
    provider_name: str
    region: str
    currency: str
    prompt: PriceCell
    completion: PriceCell
    cached: PriceCell
    fx: FxDetail | None
    carbon_g_per_1k: str | None
    available: bool
    unavailable_text: str


def build_offering_rows(
    pairs: list[tuple[ModelView, OfferingView]], eco: EcoContext | None
) -> list[OfferingRow]:
    """Rows for the price tables: one query for the published prices, a few for the FX detail."""
    published = {
        (o.provider_id, o.region, o.model_id): o
        for o in Offering.objects.filter(
            model_id__in={o.model_id for _, o in pairs},
            provider_id__in={o.provider_id for _, o in pairs},
        )
    }
    details = read_fx_details({o.currency for _, o in pairs})
    rows = []
    for n, (model, o) in enumerate(pairs):
        fee = model.platform_fee_eur
        src = published.get((o.provider_id, o.region, o.model_id))
        carbon = None
        if eco is not None and eco.current_version and model.active_params_b is not None:
            try:
                grams = grams_per_1k_tokens(
                    eco,
                    active_params_b=model.active_params_b,
                    provider=o.provider_id,
                    region=o.region,
                )
            except UnknownMethodology:
                grams = None
            carbon = None if grams is None else format_significant(Decimal(repr(grams)), 2)
        rows.append(
            OfferingRow(
                key=f"o{n}",
                model_id=model.id,
                model_name=model.display_name,
                provider_id=o.provider_id,
                provider_name=o.provider_name,
                region=o.region,
                currency=o.currency,
                prompt=price_cell(src.prompt_price if src else None, o.prompt_eur, fee, o.currency),
                completion=price_cell(
                    src.completion_price if src else None, o.completion_eur, fee, o.currency
                ),
                cached=price_cell(
                    src.cached_prompt_price if src else None, o.cached_prompt_eur, fee, o.currency
                ),
                fx=details.get(o.currency),
                carbon_g_per_1k=carbon,
                available=o.usable,
                unavailable_text=UNAVAILABLE_TEXT.get(o.unavailable_reason, o.unavailable_reason),
            )
        )
    return rows


# --- eco -------------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _eco_context(version: int, day: date) -> EcoContext:
    return load_eco_context(today=day)


def current_eco_context() -> EcoContext | None:
    """The eco context, reloaded when an admin change bumps its version or the day turns."""
    try:
        return _eco_context(read_eco_context_version(), timezone.now().date())
    except (UnknownMethodology, FileNotFoundError, KeyError):
        return None


@dataclass(frozen=True)
class EcoSummary:
    active_params_b: str | None
    nominal: bool
    band: str
    energy_wh_per_1k: str | None
    methodology_version: str | None


def summarize_eco(model: ModelView, ctx: EcoContext | None) -> EcoSummary:
    energy = None
    version = ctx.current_version if ctx else None
    if ctx is not None and version is not None:
        try:
            wh = energy_wh_per_1k_tokens(ctx, active_params_b=model.active_params_b)
        except UnknownMethodology:
            wh = None
        energy = None if wh is None else format_significant(Decimal(repr(wh)), 3)
    params = model.active_params_b
    return EcoSummary(
        active_params_b=None if params is None else format(params.normalize(), "f"),
        nominal=model.params_nominal,
        band=model.params_accuracy,
        energy_wh_per_1k=energy,
        methodology_version=version,
    )


# --- models list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRow:
    model: ModelView
    providers: list[str]
    prompt_per_1k: str | None
    completion_per_1k: str | None
    routable: bool


def build_model_rows(models: list[ModelView]) -> list[ModelRow]:
    """One line per model: its cheapest routable offering's prices (as the API's summary)."""
    rows = []
    for m in models:
        priced = [o for o in m.offerings if o.prompt_eur is not None]
        # A listed-but-not-routable model still shows its price, next to the reason it is not.
        usable = [o for o in priced if o.usable] or priced
        cheapest = min(usable, key=lambda o: o.price_sum_eur, default=None)
        fee = m.platform_fee_eur
        rows.append(
            ModelRow(
                model=m,
                providers=sorted({o.provider_id for o in m.offerings}),
                prompt_per_1k=billed_per_1k(cheapest.prompt_eur, fee) if cheapest else None,
                completion_per_1k=billed_per_1k(cheapest.completion_eur, fee) if cheapest else None,
                routable=any(o.usable for o in m.offerings),
            )
        )
    return rows


def is_china_route(provider: Provider, regions: list[str]) -> bool:
    """Served from mainland China: billed in CNY or only offered in cn-* regions."""
    if provider.billing_currency == Currency.CNY:
        return True
    return bool(regions) and all(r.startswith("cn-") for r in regions)
