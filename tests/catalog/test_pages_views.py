"""The public pages through the Django test client: filters, errors, prices, weight."""

import re
from decimal import Decimal

import pytest
from django.core.management import call_command

from catalog.models import FxIngestRun, FxRate
from catalog.snapshot import mark_catalog_changed, reset_snapshot
from tests.catalog.pages_helpers import make_page_catalogue

PAGE_BUDGET = 100 * 1024


@pytest.fixture
def site(db, settings, client):
    settings.LOWROUTER_FX_BUFFER_PERCENT = Decimal("3.0")
    settings.LOWROUTER_FX_FLOORS = {"USD": "1.0"}
    reset_snapshot()
    make_page_catalogue()
    yield client
    reset_snapshot()


def listed(html: str) -> list[str]:
    return sorted(set(re.findall(r'<td data-label="Model"><a href="/models/([^"]+)"', html)))


def test_landing_page_links_to_models_docs_and_sign_in(site) -> None:
    html = site.get("/").content.decode()
    for href in ('href="/models"', 'href="/docs/"', 'href="/accounts/login/"'):
        assert href in html
    assert "LowRouter" in html


def test_model_browser_lists_every_model_with_its_eur_price(site) -> None:
    response = site.get("/models")
    html = response.content.decode()
    assert response.status_code == 200
    assert listed(html) == [
        "deepseek/deepseek-chat",
        "openai/gpt-4o-mini",
        "scaleway/llama-3.3-70b-instruct",
    ]
    assert "€0.0009" in html  # scaleway: 0.90 EUR per 1M, shown as is
    assert "deprecated" in html


def test_filters_are_reflected_in_the_form_and_the_api_link(site) -> None:
    html = site.get("/models?capability=vision&eco_band=gross").content.decode()
    assert listed(html) == ["openai/gpt-4o-mini"]
    assert 'name="capability" value="vision" checked' in html
    assert 'name="eco_band" value="gross" checked' in html
    assert 'name="capability" value="tool_use" checked' not in html
    assert 'href="/api/v1/models?capability=vision&amp;eco_band=gross"' in html
    # Each active filter has a link that removes just that one.
    assert 'href="/models?eco_band=gross" aria-label="Remove filter capability vision"' in html


def test_submitted_form_with_empty_fields_redirects_to_the_clean_url(site) -> None:
    response = site.get("/models?provider=openai&region=&min_context=&max_price=&capability=vision")
    assert response.status_code == 302
    assert response["Location"] == "/models?provider=openai&capability=vision"


@pytest.mark.parametrize(
    ("query", "param"),
    [("min_context=lots", "min_context"), ("capability=telepathy", "capability")],
)
def test_bad_filter_value_gets_a_clear_400_page(site, query: str, param: str) -> None:
    response = site.get("/models?" + query)
    html = response.content.decode()
    assert response.status_code == 400
    assert f"Bad filter <code>{param}</code>" in html
    assert 'role="alert"' in html
    assert listed(html) == []


def test_usd_price_shows_both_figures_with_a_focusable_fx_detail(site) -> None:
    html = site.get("/models/openai/gpt-4o-mini").content.decode()
    # The pricing page's example: $0.15 at 1 EUR = 0.90 USD plus 3 % is 0.1717 EUR per 1M.
    match = re.search(
        r'<span class="fx" tabindex="0" aria-describedby="(tip-[\w-]+)">\$0\.15/M '
        r"\(€0\.17 billed\)</span>",
        html,
    )
    assert match
    tip = re.search(rf'id="{match.group(1)}">([^<]+)<', html).group(1)
    assert "1 EUR = 0.9 USD" in tip
    assert "markup 3 %" in tip
    assert "Last refreshed" in tip
    assert "€0.000172" in html  # per 1K, as debited


def test_eur_price_is_shown_as_published_without_conversion(site) -> None:
    html = site.get("/models/scaleway/llama-3.3-70b-instruct").content.decode()
    assert "€0.90/M" in html
    assert "billed)" not in html
    assert 'class="fx"' not in html


def test_cny_price_without_a_stored_rate_says_so_and_is_not_routable(site) -> None:
    FxRate.objects.filter(currency="CNY").delete()
    mark_catalog_changed()
    html = site.get("/models/deepseek/deepseek-chat").content.decode()
    assert "CN¥2.00/M (no EUR price yet)" in html
    assert "ECB rate for CNY not yet available" in html
    assert "not routable" in html


def test_model_card_shows_the_documented_fields(site) -> None:
    html = site.get("/models/deepseek/deepseek-chat").content.decode()
    for text in (
        "DeepSeek V3.2 (chat)",
        'href="/providers/deepseek"',
        "<dt>Owner</dt><dd>deepseek</dd>",
        "65536 tokens",
        "tool_use",
        "37 B",
        "band-medium",
        "cn-east",
        'class="badge warn">deprecated',
        "model_deprecated",
        'href="/models/scaleway/llama-3.3-70b-instruct"',
        "CN¥0.20/M",  # cached prompt
    ):
        assert text in html, text


def test_model_card_shows_energy_per_1k_tokens_from_the_current_methodology(site) -> None:
    html = site.get("/models/openai/gpt-4o-mini").content.decode()
    assert re.search(r"<dt>Energy per 1K tokens</dt><dd>[0-9.]+ Wh", html)


def test_china_route_provider_page_shows_its_data_handling(site) -> None:
    html = site.get("/providers/deepseek").content.decode()
    for text in ("China route", "Retention", "Training use", "Launch status", "CNY", "cn-east"):
        assert text in html, text
    assert "Live" in html


def test_eur_provider_page_has_no_china_notes(site) -> None:
    html = site.get("/providers/scaleway").content.decode()
    assert "China route" not in html
    assert "EUR" in html and "€0.90/M" in html


def test_soft_disabled_fx_shows_listed_not_routable(site) -> None:
    FxIngestRun.objects.create(source_url="http://127.0.0.1/x", ok=False, error="unreachable")
    mark_catalog_changed()
    html = site.get("/providers/openai").content.decode()
    assert "0 of 1 offerings routable" in html
    assert "listed, not routable" in html


@pytest.mark.parametrize("url", ["/models/nobody/nothing", "/providers/nobody"])
def test_unknown_model_or_provider_is_a_404_page(site, url: str) -> None:
    response = site.get(url)
    assert response.status_code == 404
    assert b"No such" in response.content


@pytest.mark.parametrize(
    "url",
    ["/", "/models", "/models/openai/gpt-4o-mini", "/providers/deepseek", "/models?min_context=x"],
)
def test_every_page_is_well_under_100_kb(site, url: str) -> None:
    response = site.get(url)
    assert len(response.content) < PAGE_BUDGET


def test_model_browser_with_the_shipped_catalogue_stays_under_100_kb(db, client) -> None:
    reset_snapshot()
    call_command("catalog_sync")
    mark_catalog_changed()
    response = client.get("/models")
    assert response.status_code == 200
    assert len(listed(response.content.decode())) > 10
    assert len(response.content) < PAGE_BUDGET
    reset_snapshot()
