"""The daily ECB ingest: fetch and parse the eurofxref feed, store the rates by ECB date, record
the run, and raise or clear the FX_INGEST_STALE alert.

Which stored rates may be used, and how a price becomes EUR, is ``catalog.fx``. Every ingest
bumps the catalogue version, so each process's snapshot picks the new rates up.
"""

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

import httpx
from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from catalog.fx import (
    ALERT_CODE,
    affected_providers,
    fresh_rates,
    needed_currencies,
    newest_rates,
    oldest_fresh_ecb_date,
)
from catalog.models import FxIngestRun, FxRate
from catalog.snapshot import mark_catalog_changed

log = logging.getLogger(__name__)

ECB_NS = "{http://www.ecb.int/vocabulary/2002-08-01/eurofxref}"


class FxFeedError(Exception):
    """The feed could not be fetched or parsed."""


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
