"""ECB euro reference rates as the catalogue uses them: which currencies may be used now, and
the EUR prices of offerings.

The ECB publishes ``1 EUR = quote`` units of ~30 currencies around 16:00 CET on each TARGET
business day (``catalog.fx_ingest`` stores them). A price in currency X becomes EUR with the
multiplier

    max(1 / quote, floor[X]) * (1 + buffer_percent / 100)

and only while X's newest rate is fresh per the TARGET calendar and the latest ingest run
succeeded. Otherwise X is left out of ``current_multipliers()``: the snapshot then marks every
offering billed in X ``fx_unavailable`` (listed, not routable) until a good ingest. There is
never a fallback rate. EUR prices are used as they are.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from catalog.models import Currency, FxIngestRun, FxRate, Offering, Provider

ALERT_CODE = "FX_INGEST_STALE"
ECB_TZ = ZoneInfo("Europe/Berlin")
# Multipliers are rounded to 10 decimal places: far below a micro-credit on any price, and it
# keeps the stored EUR prices stable across processes.
MULTIPLIER_QUANTUM = Decimal("1e-10")


# --- TARGET calendar ------------------------------------------------------------------------


def easter_sunday(year: int) -> date:
    """Gregorian Easter (the anonymous Meeus/Jones/Butcher algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def is_target_business_day(day: date) -> bool:
    """TARGET is closed on weekends, 1 Jan, Good Friday, Easter Monday, 1 May, 25-26 Dec."""
    if day.weekday() >= 5:
        return False
    if (day.month, day.day) in {(1, 1), (5, 1), (12, 25), (12, 26)}:
        return False
    easter = easter_sunday(day.year)
    return day not in {easter - timedelta(days=2), easter + timedelta(days=1)}


def previous_business_day(day: date) -> date:
    day -= timedelta(days=1)
    while not is_target_business_day(day):
        day -= timedelta(days=1)
    return day


def oldest_fresh_ecb_date(now: datetime | None = None) -> date:
    """The oldest ECB date a rate may carry and still be used at ``now``.

    That is the business day before today (Frankfurt time): a weekend or holiday reuses the last
    published rate, and the day's rate may lag its ~16:00 CET publication (the daily run comes
    after it, the ECB is occasionally late) without switching providers off. A rate older than
    that means at least one business day was missed.
    """
    today = timezone.localtime(now or timezone.now(), ECB_TZ).date()
    return previous_business_day(today)


# --- multipliers ----------------------------------------------------------------------------


def buffer_percent() -> Decimal:
    return Decimal(str(settings.LOWROUTER_FX_BUFFER_PERCENT))


def floor_for(currency: str) -> Decimal | None:
    raw = settings.LOWROUTER_FX_FLOORS.get(currency)
    return None if raw in (None, "") else Decimal(str(raw))


def multiplier(currency: str, quote: Decimal) -> Decimal:
    """``max(1/quote, floor) * (1 + buffer/100)``: what one unit of ``currency`` is billed as."""
    rate = Decimal(1) / quote
    floor = floor_for(currency)
    if floor is not None:
        rate = max(rate, floor)
    return (rate * (1 + buffer_percent() / 100)).quantize(MULTIPLIER_QUANTUM)


def to_stored_eur(source_price: Decimal, currency: str, quote: Decimal) -> Decimal:
    """The stored EUR price per 1M tokens for a price in ``currency`` (the documented formula)."""
    return source_price * multiplier(currency, quote)


def newest_rates() -> dict[str, FxRate]:
    latest = FxRate.objects.values("currency").annotate(day=Max("ecb_date"))
    wanted = {row["currency"]: row["day"] for row in latest}
    rows = FxRate.objects.filter(ecb_date__in=set(wanted.values()))
    return {r.currency: r for r in rows if wanted[r.currency] == r.ecb_date}


def needed_currencies() -> set[str]:
    return set(
        Provider.objects.exclude(billing_currency=Currency.EUR).values_list(
            "billing_currency", flat=True
        )
    )


def fresh_rates(now: datetime | None = None) -> dict[str, FxRate]:
    """The newest rate of each currency that may be used now (empty after a failed run)."""
    last_run = FxIngestRun.objects.first()
    if last_run is None or not last_run.ok:
        return {}
    oldest = oldest_fresh_ecb_date(now)
    return {c: r for c, r in newest_rates().items() if r.ecb_date >= oldest}


def current_multipliers(now: datetime | None = None) -> dict[str, Decimal]:
    return {c: multiplier(c, r.quote) for c, r in fresh_rates(now).items()}


# --- EUR prices of offerings ---------------------------------------------------------------


@dataclass(frozen=True)
class EurPrices:
    prompt: Decimal
    completion: Decimal
    cached_prompt: Decimal | None


def to_eur(amount: Decimal, currency: str, rates: dict[str, Decimal]) -> Decimal | None:
    if currency == Currency.EUR:
        return amount
    rate = rates.get(currency)
    if rate is None:
        return None
    return amount * rate


def eur_prices(offering: Offering, currency: str, rates: dict[str, Decimal]) -> EurPrices | None:
    prompt = to_eur(offering.prompt_price, currency, rates)
    completion = to_eur(offering.completion_price, currency, rates)
    if prompt is None or completion is None:
        return None
    cached = None
    if offering.cached_prompt_price is not None:
        cached = to_eur(offering.cached_prompt_price, currency, rates)
    return EurPrices(prompt=prompt, completion=completion, cached_prompt=cached)


# --- the stale-rate alert -------------------------------------------------------------------


def affected_providers(currencies: list[str]) -> list[str]:
    return list(
        Provider.objects.filter(billing_currency__in=currencies).values_list("id", flat=True)
    )


def current_alert(now: datetime | None = None) -> str:
    """The FX_INGEST_STALE banner text, or "" when every billing currency has a fresh rate."""
    needed = needed_currencies()
    if not needed:
        return ""
    last_run = FxIngestRun.objects.first()
    fresh = fresh_rates(now)
    missing = sorted(needed - set(fresh))
    if not missing:
        return ""
    if last_run is None:
        why = "no FX ingest has run yet (manage.py fx_ingest)"
    elif not last_run.ok:
        why = f"the last ingest failed: {last_run.error}"
    else:
        why = "the newest ECB rates are older than the TARGET calendar allows"
    providers = affected_providers(missing)
    return (
        f"{ALERT_CODE}: {why}. Providers billed in {', '.join(missing)} are listed but not "
        f"routable: {', '.join(providers)}."
    )
