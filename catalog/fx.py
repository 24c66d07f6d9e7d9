"""ECB euro reference rates: fetch, parse, store, and decide which currencies may be used.

The ECB publishes ``1 EUR = quote`` units of ~30 currencies around 16:00 CET on each TARGET
business day. A price in currency X becomes EUR with the multiplier

    max(1 / quote, floor[X]) * (1 + buffer_percent / 100)

and only while X's newest rate is fresh per the TARGET calendar and the latest ingest run
succeeded. Otherwise X is left out of ``current_multipliers()``: the snapshot then marks every
offering billed in X ``fx_unavailable`` (listed, not routable) until a good ingest. There is
never a fallback rate.
"""

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import httpx
from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from catalog.models import Currency, FxIngestRun, FxRate, Provider
from catalog.snapshot import mark_catalog_changed

log = logging.getLogger(__name__)

ALERT_CODE = "FX_INGEST_STALE"
ECB_NS = "{http://www.ecb.int/vocabulary/2002-08-01/eurofxref}"
ECB_TZ = ZoneInfo("Europe/Berlin")
# Multipliers are rounded to 10 decimal places: far below a micro-credit on any price, and it
# keeps the stored EUR prices stable across processes.
MULTIPLIER_QUANTUM = Decimal("1e-10")


class FxFeedError(Exception):
    """The feed could not be fetched or parsed."""


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


# --- fetching and parsing -------------------------------------------------------------------


def parse_ecb_xml(content: bytes) -> dict[date, dict[str, Decimal]]:
    """Rates by ECB date from a daily, 90-day or full-history eurofxref file."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise FxFeedError(f"ECB feed is not well-formed XML: {exc}") from exc
    outer = root.find(f"{ECB_NS}Cube")
    if outer is None:
        raise FxFeedError("ECB feed has no Cube element (not a eurofxref file)")
    result: dict[date, dict[str, Decimal]] = {}
    for day_cube in outer.findall(f"{ECB_NS}Cube"):
        try:
            day = date.fromisoformat(day_cube.get("time", ""))
        except ValueError as exc:
            raise FxFeedError(
                f"ECB feed has a bad time attribute: {day_cube.get('time')!r}"
            ) from exc
        rates: dict[str, Decimal] = {}
        for cube in day_cube.findall(f"{ECB_NS}Cube"):
            currency, raw = cube.get("currency", ""), cube.get("rate", "")
            if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
                raise FxFeedError(f"ECB feed has a bad currency code {currency!r} on {day}")
            try:
                quote = Decimal(raw)
            except InvalidOperation as exc:
                raise FxFeedError(
                    f"ECB feed has a bad rate {raw!r} for {currency} on {day}"
                ) from exc
            if not quote.is_finite() or quote <= 0:
                raise FxFeedError(f"ECB feed has a non-positive rate for {currency} on {day}")
            rates[currency] = quote
        if not rates:
            raise FxFeedError(f"ECB feed has no rates for {day}")
        result[day] = rates
    if not result:
        raise FxFeedError("ECB feed holds no dated rates")
    return result


def fetch_ecb(url: str) -> dict[date, dict[str, Decimal]]:
    try:
        response = httpx.get(
            url, timeout=settings.LOWROUTER_FX_FETCH_TIMEOUT, follow_redirects=True
        )
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise FxFeedError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from exc
    return parse_ecb_xml(response.content)


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


# --- the ingest -----------------------------------------------------------------------------


@dataclass
class FxIngestResult:
    ok: bool
    url: str
    newest_ecb_date: date | None = None
    rates_stored: int = 0
    stale_currencies: list[str] = field(default_factory=list)
    error: str = ""


def ingest_fx(now: datetime | None = None) -> FxIngestResult:
    """Fetch the ECB rates, store them by ECB date, record the run, raise or clear the alert.

    The daily file is enough while the stored rates are current; on the first run, or when the
    newest stored date shows a gap, the 90-day file fills every missed business day.
    """
    now = now or timezone.now()
    oldest = oldest_fresh_ecb_date(now)
    newest_stored = FxRate.objects.aggregate(day=Max("ecb_date"))["day"]
    gap = newest_stored is None or newest_stored < oldest
    url = settings.LOWROUTER_ECB_90D_URL if gap else settings.LOWROUTER_ECB_DAILY_URL
    previous = FxIngestRun.objects.first()
    was_stale = previous is not None and previous.is_stale
    result = FxIngestResult(ok=False, url=url)
    try:
        by_day = fetch_ecb(url)
    except FxFeedError as exc:
        result.error = str(exc)
        by_day = {}
    if by_day:
        rows = [
            FxRate(currency=c, ecb_date=day, quote=q, fetched_at=now)
            for day, rates in by_day.items()
            for c, q in rates.items()
        ]
        with transaction.atomic():
            existing = set(
                FxRate.objects.filter(ecb_date__in=by_day.keys()).values_list(
                    "currency", "ecb_date"
                )
            )
            new_rows = [r for r in rows if (r.currency, r.ecb_date) not in existing]
            # ignore_conflicts: two ingests racing (a manual run beside the beat) both succeed.
            FxRate.objects.bulk_create(new_rows, ignore_conflicts=True)
        result.ok = True
        result.rates_stored = len(new_rows)
        result.newest_ecb_date = max(by_day)
    if result.ok:
        rates = newest_rates()
        result.stale_currencies = sorted(
            c for c in needed_currencies() if c not in rates or rates[c].ecb_date < oldest
        )
    else:
        result.stale_currencies = sorted(needed_currencies())
    FxIngestRun.objects.create(
        started_at=now,
        source_url=url,
        ok=result.ok,
        newest_ecb_date=result.newest_ecb_date,
        rates_stored=result.rates_stored,
        stale_currencies=result.stale_currencies,
        error=result.error,
    )
    if not result.ok or result.stale_currencies:
        raise_stale_alert(result, notify=not was_stale)
    elif was_stale:
        log.warning(
            "%s cleared: ECB rates of %s are current again", ALERT_CODE, result.newest_ecb_date
        )
    mark_catalog_changed()
    return result


def affected_providers(currencies: list[str]) -> list[str]:
    return list(
        Provider.objects.filter(billing_currency__in=currencies).values_list("id", flat=True)
    )


def raise_stale_alert(result: FxIngestResult, *, notify: bool) -> None:
    """Error log on every bad run; email the operators when the alert is first raised."""
    providers = affected_providers(result.stale_currencies)
    detail = result.error or f"newest rates too old for {', '.join(result.stale_currencies)}"
    log.error(
        "%s: %s; soft-disabled providers billed in %s: %s",
        ALERT_CODE,
        detail,
        ", ".join(result.stale_currencies) or "-",
        ", ".join(providers) or "-",
    )
    if notify and settings.OPERATOR_EMAILS:
        send_mail(
            f"[LowRouter] {ALERT_CODE}: FX ingest failed or stale",
            f"{detail}\n\nSource: {result.url}\nCurrencies without a usable rate: "
            f"{', '.join(result.stale_currencies) or '-'}\nProviders listed but not routable "
            f"until the next good ingest: {', '.join(providers) or '-'}\n\nThere is no fallback "
            "rate; the providers come back on their own after a successful ingest.\n",
            settings.DEFAULT_FROM_EMAIL,
            settings.OPERATOR_EMAILS,
            fail_silently=True,
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


FRESH_SET_CACHE_KEY = "catalog:fx:fresh"


def refresh_freshness(now: datetime | None = None) -> list[str]:
    """Bump the catalogue version when the set of usable currencies changed since last time.

    Snapshots evaluate freshness when they load; without this a rate that goes stale at
    midnight (say the beat stopped) would stay in use until the next catalogue write.
    """
    fresh = sorted(fresh_rates(now))
    if cache.get(FRESH_SET_CACHE_KEY) != fresh:
        cache.set(FRESH_SET_CACHE_KEY, fresh, timeout=None)
        mark_catalog_changed()
    return fresh
