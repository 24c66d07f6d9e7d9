"""/privacy, /terms, /impressum, /pricing, /providers, /status, /changelog: rendered in the
site's shell for anyone, within the page budget, with what the operator configured or posted."""

import asyncio
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.utils import timezone

from routing.health import amark_failure
from site_pages.models import ChangelogEntry, ChangelogKind, Incident, IncidentSeverity

pytestmark = pytest.mark.django_db

PAGES = ["/privacy", "/terms", "/impressum", "/pricing", "/providers", "/status", "/changelog"]


def weight_with_static(html: bytes) -> int:
    """The page plus the stylesheets and scripts it links, as the browser loads them."""
    static = sum(
        Path(finders.find(url.decode().removeprefix("/static/"))).stat().st_size
        for url in re.findall(rb'(?:href|src)="(/static/[^"]+)"', html)
    )
    assert static > 5_000  # the stylesheet and script were found and counted
    return len(html) + static


@pytest.mark.parametrize("visitor", ["anonymous", "signed in"])
@pytest.mark.parametrize("path", PAGES)
def test_each_legal_and_trust_page_renders_in_the_shell_under_100_kb(
    catalogue: None, signed_in: Client, path: str, visitor: str
) -> None:
    client = signed_in if visitor == "signed in" else Client()
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<header class="site">' in html and '<footer class="site">' in html
    assert ('href="/dashboard"' in html) == (visitor == "signed in")
    footer = html[html.index('<footer class="site">') :]
    for page in PAGES:
        assert f'href="{page}"' in footer
    assert weight_with_static(response.content) < 100_000


def test_impressum_shows_the_configured_company_details(settings: Any) -> None:
    settings.LOWROUTER_SELLER = {
        "legal_name": "Dvořák & Partner SAS",
        "address": "12 rue de la Paix, 75002 Paris",
        "country": "FR",
        "vat_number": "FR40303265045",
        "registration": "SAS, RCS Paris 303 265 045",
        "support_email": "support@lowrouter.example",
        "representative": "Ada Lovelace",
        "host": "Scaleway SAS, 8 rue de la Ville l'Evêque, 75008 Paris",
    }
    html = Client().get("/impressum").content.decode()
    for expected in [
        "Dvořák &amp; Partner SAS",
        "12 rue de la Paix, 75002 Paris, France",
        "FR40303265045",
        "SAS, RCS Paris 303 265 045",
        'href="mailto:support@lowrouter.example"',
        "Ada Lovelace",
        "Scaleway SAS, 8 rue de la Ville l&#x27;Evêque, 75008 Paris",
    ]:
        assert expected in html
    assert "not configured" not in html


def test_impressum_says_which_details_are_missing(settings: Any) -> None:
    settings.LOWROUTER_SELLER = {**settings.LOWROUTER_SELLER, "vat_number": "", "host": ""}
    assert Client().get("/impressum").content.decode().count("(not configured)") >= 2


def test_privacy_and_terms_state_retention_refunds_and_that_prompts_are_not_stored(
    settings: Any,
) -> None:
    settings.LOWROUTER_RECORD_RETENTION_MONTHS = 13
    settings.LOWROUTER_REFUND_WINDOW_DAYS = 14
    privacy = Client().get("/privacy").content.decode()
    assert "13 months" in privacy
    assert "The text of your prompts and of the completions" in privacy
    assert 'href="/providers"' in privacy
    terms = Client().get("/terms").content.decode()
    assert "within 14 days" in terms
    assert "€0.80" in terms


def test_pricing_explains_the_fees_and_vat_and_links_to_the_model_browser(
    catalogue: None, settings: Any
) -> None:
    html = Client().get("/pricing").content.decode()
    assert 'href="/models"' in html
    assert "€0.80" in html  # the top-up fee (LOWROUTER_TOPUP_FEE_EUR)
    assert re.search(r"from €[\d.]+ to €[\d.]+ per 1M tokens", html)
    # 20 EUR of credits + 0.80 fee, French VAT at 20 %.
    assert "EUR 20.80" in html and "VAT at 20%" in html and "EUR 24.96" in html
    assert "reverse charge" in html
    settings.LOWROUTER_TOPUP_FEE_EUR = Decimal("1.25")
    assert "€1.25" in Client().get("/pricing").content.decode()


def test_providers_links_every_catalogue_provider_page(catalogue: None) -> None:
    html = Client().get("/providers").content.decode()
    for provider in ("demo", "openai", "mistral", "scaleway"):
        assert f'href="/providers/{provider}"' in html
        assert Client().get(f"/providers/{provider}").status_code == 200


def test_status_shows_an_unhealthy_slot_and_an_open_incident(catalogue: None) -> None:
    asyncio.run(amark_failure(("openai", "us-east"), reason="http_503"))
    now = timezone.now()
    Incident.objects.create(
        title="Elevated errors on OpenAI us-east",
        body="Requests fail over to other providers. <script>x</script>",
        severity=IncidentSeverity.MAJOR,
        started_at=now - timedelta(hours=1),
    )
    Incident.objects.create(
        title="Old maintenance",
        severity=IncidentSeverity.MAINTENANCE,
        started_at=now - timedelta(days=40),
        resolved_at=now - timedelta(days=39),
    )
    html = Client().get("/status").content.decode()
    row = re.search(r"<tr>\s*<td[^>]*><a href=\"/providers/openai\">.*?</tr>", html, re.S)
    assert row and "us-east" in row.group(0) and "unavailable" in row.group(0)
    assert "http_503" in row.group(0)
    healthy = re.search(r"<tr>\s*<td[^>]*><a href=\"/providers/mistral\">.*?</tr>", html, re.S)
    assert healthy and '<span class="ok">ok</span>' in healthy.group(0)
    assert "Elevated errors on OpenAI us-east" in html and "1 open incident" in html
    assert "&lt;script&gt;" in html and "<script>x" not in html
    assert "Old maintenance" not in html


def test_changelog_lists_entries_newest_first_with_eco_methodology_changes() -> None:
    ChangelogEntry.objects.create(date=date(2026, 3, 1), title="Anthropic route", kind="product")
    ChangelogEntry.objects.create(
        date=date(2026, 11, 13),
        title="EcoLogits 0.9 energy model",
        kind=ChangelogKind.ECO_METHODOLOGY,
        body="Estimates now use the **ML.ENERGY** fit.",
    )
    ChangelogEntry.objects.create(date=date(2026, 6, 1), title="Lower fee", kind="pricing")
    html = Client().get("/changelog").content.decode()
    titles = re.findall(r"</time> · ([^<]+?) <span", html)
    assert titles == ["EcoLogits 0.9 energy model", "Lower fee", "Anthropic route"]
    assert "2026-11-13" in html and "Eco methodology" in html
    assert "<strong>ML.ENERGY</strong>" in html
    assert "v0.4-2026-01" in html  # the shipped methodology versions, with their dates


def test_operators_post_incidents_and_changelog_entries_in_the_admin(admin_client: Client) -> None:
    client = admin_client
    for model in ("incident", "changelogentry"):
        assert client.get(f"/admin/site_pages/{model}/add/").status_code == 200
    response = client.post(
        "/admin/site_pages/changelogentry/add/",
        {"date": "2026-12-01", "title": "Status page", "body": "", "kind": "product"},
    )
    assert response.status_code == 302
    assert ChangelogEntry.objects.get().title == "Status page"
