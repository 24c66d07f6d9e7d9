"""The daily ECB ingest against a live feed server speaking the real eurofxref XML."""

import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured

from catalog import fx, pricing
from catalog.models import FxIngestRun, FxRate, Model, Offering, Provider
from catalog.snapshot import load_snapshot
from tests.catalog.conftest import DEFAULT_RATES, FeedServer, ecb_xml
from tests.conftest import make_operator

pytestmark = pytest.mark.django_db

# Wednesday 25 Nov 2026, after the ECB's 16:00 CET publication.
WEDNESDAY = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


def business_days_back(day: date, n: int) -> list[date]:
    days = [day] if fx.is_target_business_day(day) else []
    while len(days) < n:
        day = fx.previous_business_day(day)
        days.append(day)
    return days


def usd_and_eur_catalogue() -> None:
    for pid, currency in (("usdco", "USD"), ("cnyco", "CNY"), ("eurco", "EUR")):
        provider = Provider.objects.create(
            id=pid,
            name=pid,
            base_url=f"https://{pid}.example/v1",
            billing_currency=currency,
            requires_credential=False,
        )
        model = Model.objects.create(
            id=f"{pid}/m", display_name="M", owner=pid, context_window=1000, max_output_tokens=100
        )
        Offering.objects.create(
            model=model,
            provider=provider,
            region="eu-west",
            upstream_model="m",
            prompt_price=Decimal("0.15"),
            completion_price=Decimal("0.60"),
        )


def reasons() -> dict[str, str]:
    snap = load_snapshot()
    return {
        m.offerings[0].provider_id: m.offerings[0].unavailable_reason for m in snap.models.values()
    }


# --- calendar -------------------------------------------------------------------------------


def test_target_calendar_closes_on_weekends_easter_may_day_and_christmas() -> None:
    assert fx.easter_sunday(2024) == date(2024, 3, 31)
    assert fx.easter_sunday(2026) == date(2026, 4, 5)
    closed = [
        date(2026, 1, 1),
        date(2026, 4, 3),  # Good Friday
        date(2026, 4, 6),  # Easter Monday
        date(2026, 5, 1),
        date(2026, 12, 25),
        date(2026, 12, 26),
        date(2026, 11, 28),  # Saturday
        date(2026, 11, 29),  # Sunday
    ]
    assert not any(fx.is_target_business_day(d) for d in closed)
    assert fx.is_target_business_day(date(2026, 4, 2))
    assert fx.is_target_business_day(date(2026, 12, 24))
    assert fx.previous_business_day(date(2026, 4, 7)) == date(2026, 4, 2)


# --- parsing --------------------------------------------------------------------------------


def test_parses_the_real_format_with_decimal_rates() -> None:
    parsed = fx.parse_ecb_xml(ecb_xml({date(2024, 6, 28): DEFAULT_RATES}))
    assert parsed == {date(2024, 6, 28): {k: Decimal(v) for k, v in DEFAULT_RATES.items()}}
    assert parsed[date(2024, 6, 28)]["IDR"] == Decimal("17487.21")


@pytest.mark.parametrize(
    "body",
    [
        b"<html>Service unavailable</html>",
        b"<?xml version='1.0'?><gesmes:Envelope",
        ecb_xml({date(2024, 6, 28): {"USD": "abc"}}),
        ecb_xml({date(2024, 6, 28): {"USD": "0"}}),
        ecb_xml({}),
    ],
)
def test_malformed_feeds_are_refused(body: bytes) -> None:
    with pytest.raises(fx.FxFeedError):
        fx.parse_ecb_xml(body)


# --- the formula: both worked examples of the pricing page ---------------------------------


def test_worked_example_with_a_weak_euro_uses_the_ecb_rate(settings) -> None:
    settings.LOWROUTER_FX_BUFFER_PERCENT = Decimal("3.0")
    settings.LOWROUTER_FX_FLOORS = {"USD": "1.0"}
    # 1 EUR = 0.90 USD, so 1 USD = 1.111 EUR: 0.15 x 1.111 x 1.03 ~ 0.1717 EUR per 1M.
    stored = fx.to_stored_eur(Decimal("0.15"), "USD", Decimal("0.90"))
    assert stored.quantize(Decimal("0.0001")) == Decimal("0.1717")


def test_worked_example_with_a_strong_euro_hits_the_parity_floor(settings) -> None:
    settings.LOWROUTER_FX_BUFFER_PERCENT = Decimal("3.0")
    settings.LOWROUTER_FX_FLOORS = {"USD": "1.0"}
    # 1 EUR = 1.085 USD, so 1 USD = 0.92 EUR, below the floor: 0.15 x 1.0 x 1.03 = 0.1545.
    assert fx.to_stored_eur(Decimal("0.15"), "USD", Decimal("1.085")) == Decimal("0.1545")


def test_cny_has_no_floor_by_default(settings) -> None:
    settings.LOWROUTER_FX_BUFFER_PERCENT = Decimal("3.0")
    settings.LOWROUTER_FX_FLOORS = {"USD": "1.0"}
    # 1/7.7748 = 0.128621 EUR per CNY; a parity floor would bill it ~7.8x too high.
    expected = (Decimal(1) / Decimal("7.7748") * Decimal("1.03")).quantize(Decimal("1e-10"))
    assert fx.multiplier("CNY", Decimal("7.7748")) == expected == Decimal("0.1324792921")


def test_buffer_setting_is_clamped_and_a_non_number_is_refused() -> None:
    from lowrouter import settings as project_settings

    assert project_settings._fx_buffer_percent("3.0") == Decimal("3.0")
    assert project_settings._fx_buffer_percent("25") == Decimal("20")
    assert project_settings._fx_buffer_percent("-2") == Decimal("0")
    for bad in ("three", "", "nan"):
        with pytest.raises(ImproperlyConfigured):
            project_settings._fx_buffer_percent(bad)


# --- the ingest -----------------------------------------------------------------------------


def test_first_run_reads_the_90_day_file_then_the_daily_one(feed: FeedServer) -> None:
    days = business_days_back(WEDNESDAY.date(), 60)
    feed.serve_rates({days[0]: DEFAULT_RATES}, {d: DEFAULT_RATES for d in days})
    first = fx.ingest_fx(now=WEDNESDAY)
    assert first.ok and first.url.endswith("hist-90d.xml")
    assert FxRate.objects.filter(currency="USD").count() == 60
    second = fx.ingest_fx(now=WEDNESDAY + timedelta(days=1))
    assert second.ok and second.url.endswith("daily.xml")
    assert second.rates_stored == 0  # the same day again: nothing new, no duplicates
    assert feed.hits == ["/eurofxref-hist-90d.xml", "/eurofxref-daily.xml"]


def test_a_gap_is_filled_from_the_90_day_file(feed: FeedServer) -> None:
    days = business_days_back(WEDNESDAY.date(), 10)
    feed.serve_rates({days[-1]: DEFAULT_RATES})
    fx.ingest_fx(now=datetime.combine(days[-1], datetime.min.time(), UTC) + timedelta(hours=17))
    feed.serve_rates({days[0]: DEFAULT_RATES}, {d: DEFAULT_RATES for d in days})
    result = fx.ingest_fx(now=WEDNESDAY)
    assert result.url.endswith("hist-90d.xml")
    assert set(FxRate.objects.filter(currency="USD").values_list("ecb_date", flat=True)) == set(
        days
    )


def test_weekend_reuses_fridays_rate(feed: FeedServer) -> None:
    usd_and_eur_catalogue()
    friday = date(2026, 11, 27)
    feed.serve_rates({friday: DEFAULT_RATES})
    saturday = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert fx.ingest_fx(now=saturday).stale_currencies == []
    for now in (
        saturday,
        datetime(2026, 11, 29, 20, tzinfo=UTC),
        datetime(2026, 11, 30, 9, tzinfo=UTC),
    ):
        assert set(fx.current_multipliers(now)) >= {"USD", "CNY"}
    # Tuesday with Friday's rate: Monday's publication was missed.
    assert fx.current_multipliers(datetime(2026, 12, 1, 18, tzinfo=UTC)) == {}


def test_easter_holidays_reuse_the_thursday_rate(feed: FeedServer) -> None:
    usd_and_eur_catalogue()
    thursday = date(2026, 4, 2)
    feed.serve_rates({thursday: DEFAULT_RATES})
    easter_monday = datetime(2026, 4, 6, 18, tzinfo=UTC)
    result = fx.ingest_fx(now=easter_monday)
    assert result.ok and result.stale_currencies == []
    assert "USD" in fx.current_multipliers(datetime(2026, 4, 7, 10, tzinfo=UTC))
    assert fx.current_multipliers(datetime(2026, 4, 8, 18, tzinfo=UTC)) == {}


def test_a_feed_stuck_on_an_old_day_is_stale(feed: FeedServer, caplog) -> None:
    usd_and_eur_catalogue()
    feed.serve_rates({date(2026, 11, 20): DEFAULT_RATES})
    with caplog.at_level(logging.ERROR, logger="catalog.fx"):
        result = fx.ingest_fx(now=WEDNESDAY)
    assert result.ok and result.stale_currencies == ["CNY", "USD"]
    assert "FX_INGEST_STALE" in caplog.text
    assert fx.current_multipliers(WEDNESDAY) == {}


def today_rates() -> dict[date, dict[str, str]]:
    day = fx.oldest_fresh_ecb_date()
    return {day: DEFAULT_RATES}


@pytest.mark.parametrize("fault", ["malformed", "unreachable", "server_error"])
def test_a_failed_ingest_soft_disables_non_eur_providers_alerts_and_recovers(
    feed: FeedServer, settings, caplog, fault: str
) -> None:
    usd_and_eur_catalogue()
    feed.serve_rates(today_rates())
    assert fx.ingest_fx().ok
    assert reasons() == {"usdco": "", "cnyco": "", "eurco": ""}

    if fault == "malformed":
        feed.serve("/eurofxref-daily.xml", b"<?xml version='1.0'?><oops>")
    elif fault == "server_error":
        feed.serve("/eurofxref-daily.xml", b"busy", status=503)
    else:
        settings.LOWROUTER_ECB_DAILY_URL = "http://127.0.0.1:9/eurofxref-daily.xml"
    with caplog.at_level(logging.ERROR, logger="catalog.fx"):
        failed = fx.ingest_fx()
    assert not failed.ok and failed.error
    assert failed.stale_currencies == ["CNY", "USD"]
    assert pricing.current_rates() == {}  # never a fallback rate
    assert reasons() == {"usdco": "fx_unavailable", "cnyco": "fx_unavailable", "eurco": ""}
    assert "FX_INGEST_STALE" in caplog.text
    assert len(mail.outbox) == 1 and "FX_INGEST_STALE" in mail.outbox[0].subject
    assert "usdco" in mail.outbox[0].body and mail.outbox[0].to == ["ops@example.com"]
    assert "FX_INGEST_STALE" in fx.current_alert()

    fx.ingest_fx()  # still failing: logged again, but the operators are not emailed twice
    assert len(mail.outbox) == 1

    settings.LOWROUTER_ECB_DAILY_URL = feed.url + "/eurofxref-daily.xml"
    feed.serve_rates(today_rates())
    recovered = fx.ingest_fx()
    assert recovered.ok and recovered.stale_currencies == []
    assert reasons() == {"usdco": "", "cnyco": "", "eurco": ""}
    assert fx.current_alert() == ""
    assert FxIngestRun.objects.count() == 4


def test_snapshot_prices_use_the_ecb_multiplier(feed: FeedServer) -> None:
    usd_and_eur_catalogue()
    feed.serve_rates(today_rates())
    fx.ingest_fx()
    snap = load_snapshot()
    usd = snap.model("usdco/m").offerings[0]
    cny = snap.model("cnyco/m").offerings[0]
    eur = snap.model("eurco/m").offerings[0]
    # 1 EUR = 1.0705 USD: 1/1.0705 = 0.934 < floor 1.0, so 0.15 x 1.0 x 1.03.
    assert usd.prompt_eur == Decimal("0.1545")
    assert cny.prompt_eur == Decimal("0.15") * fx.multiplier("CNY", Decimal("7.7748"))
    assert eur.prompt_eur == Decimal("0.15")


def test_the_admin_shows_the_fx_alert_banner(feed: FeedServer) -> None:
    from django.test import Client

    usd_and_eur_catalogue()
    client = Client()
    client.force_login(make_operator())
    page = client.get("/admin/").content.decode()
    assert "FX_INGEST_STALE" in page and "no FX ingest has run yet" in page
    feed.serve_rates(today_rates())
    fx.ingest_fx()
    assert "FX_INGEST_STALE" not in client.get("/admin/").content.decode()


def test_the_command_runs_the_ingest(feed: FeedServer) -> None:
    from io import StringIO

    from django.core.management import call_command

    feed.serve_rates(today_rates())
    out = StringIO()
    call_command("fx_ingest", stdout=out)
    assert "new rate(s) stored" in out.getvalue()
    assert FxRate.objects.filter(currency="USD").exists()


def test_the_freshness_check_reloads_snapshots_when_a_rate_ages_out(feed: FeedServer) -> None:
    from django.core.cache import cache

    from catalog.snapshot import VERSION_CACHE_KEY
    from catalog.tasks import fx_freshness_check

    usd_and_eur_catalogue()
    feed.serve_rates({date(2026, 11, 27): DEFAULT_RATES})
    fx.ingest_fx(now=datetime(2026, 11, 28, 12, tzinfo=UTC))
    assert {"CNY", "USD"} <= set(fx.refresh_freshness(datetime(2026, 11, 30, 9, tzinfo=UTC)))
    version = cache.get(VERSION_CACHE_KEY)
    assert {"CNY", "USD"} <= set(fx.refresh_freshness(datetime(2026, 11, 30, 10, tzinfo=UTC)))
    assert cache.get(VERSION_CACHE_KEY) == version  # nothing changed, no reload
    assert fx.refresh_freshness(datetime(2026, 12, 1, 18, tzinfo=UTC)) == []
    assert cache.get(VERSION_CACHE_KEY) > version
    assert isinstance(fx_freshness_check.apply().get(), list)


def test_a_deprecated_model_needs_a_sunset_date_in_the_admin_too() -> None:
    from django.core.exceptions import ValidationError

    model = Model(id="x/y", display_name="Y", owner="x", context_window=10, max_output_tokens=5)
    model.lifecycle = "deprecated"
    with pytest.raises(ValidationError, match="sunset"):
        model.full_clean()
