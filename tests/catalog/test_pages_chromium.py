"""The public pages in a real headless Chromium: filter links, the FX detail on hover and on
keyboard focus, a phone-sized viewport, and the weight of what the browser loads."""

import asyncio
import os
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from catalog.snapshot import reset_snapshot
from tests.catalog.pages_chromium import CHROMIUM, DESKTOP, PHONE, Page, dump_dom, with_page
from tests.catalog.pages_helpers import make_page_catalogue

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium binary")

# Screenshots land here so a person (or CI artefacts) can look at them.
SHOT_DIR = Path(os.environ.get("LOWROUTER_SCREENSHOT_DIR", "/tmp/lowrouter-screenshots"))


@pytest.fixture
def site(transactional_db, settings, live_server):
    settings.LOWROUTER_FX_BUFFER_PERCENT = Decimal("3.0")
    settings.LOWROUTER_FX_FLOORS = {"USD": "1.0"}
    reset_snapshot()
    make_page_catalogue()
    yield live_server.url
    reset_snapshot()


def test_filter_links_lead_to_filtered_urls_the_api_accepts(site: str) -> None:
    dom = dump_dom(site + "/models?capability=vision")
    assert 'href="/models/openai/gpt-4o-mini"' in dom
    assert 'href="/models/scaleway/llama-3.3-70b-instruct"' not in dom
    assert 'value="vision" checked=""' in dom
    assert 'href="/api/v1/models?capability=vision"' in dom


def test_applying_the_filter_form_lands_on_the_clean_shareable_url(site: str) -> None:
    async def work(page: Page) -> tuple[str, list[str]]:
        await page.open(site + "/models", DESKTOP)
        await page.js(
            "document.querySelector('input[name=eco_band][value=medium]').checked = true;"
            "document.querySelector('input[name=min_context]').value = '64000';"
            "document.querySelector('form.filters').submit();"
        )
        await page.wait_event("Page.loadEventFired")
        href = await page.js("location.href")
        models = await page.js(
            "[...document.querySelectorAll('td[data-label=Model] > a')]"
            ".map(a => a.getAttribute('href'))"
        )
        return href, models

    href, models = asyncio.run(with_page(work))
    assert urlsplit(href).query == "min_context=64000&eco_band=medium"
    assert models == ["/models/deepseek/deepseek-chat"]


TIP_STATE = """(() => {
  const fx = document.querySelector('.fx');
  const tip = document.getElementById(fx.getAttribute('aria-describedby'));
  const r = fx.getBoundingClientRect();
  return {focused: document.activeElement === fx, shown: getComputedStyle(tip).display,
          text: tip.textContent, label: fx.textContent, role: tip.getAttribute('role'),
          x: r.left + r.width / 2, y: r.top + r.height / 2};
})()"""


def test_fx_detail_opens_on_keyboard_focus_and_on_hover(site: str) -> None:
    async def work(page: Page) -> dict:
        await page.open(site + "/models/openai/gpt-4o-mini", DESKTOP)
        states = {"initial": await page.js(TIP_STATE)}
        # Tab through the page until the first converted price has focus.
        for _ in range(40):
            await page.press_tab()
            if (await page.js(TIP_STATE))["focused"]:
                break
        states["focused"] = await page.js(TIP_STATE)
        await page.press_escape()
        states["escaped"] = await page.js(TIP_STATE)
        await page.js("document.activeElement.blur()")
        await page.hover(states["initial"]["x"], states["initial"]["y"])
        states["hovered"] = await page.js(TIP_STATE)
        await page.hover(1, 1)
        states["away"] = await page.js(TIP_STATE)
        SHOT_DIR.mkdir(parents=True, exist_ok=True)
        await page.hover(states["initial"]["x"], states["initial"]["y"])
        await page.screenshot(SHOT_DIR / "model-card-desktop-hover.png")
        return states

    s = asyncio.run(with_page(work))
    assert s["initial"]["label"] == "$0.15/M (€0.17 billed)"
    assert s["initial"]["shown"] == "none"
    assert s["initial"]["role"] == "tooltip"
    assert "1 EUR = 0.9 USD" in s["initial"]["text"] and "markup 3 %" in s["initial"]["text"]
    assert s["focused"]["focused"] and s["focused"]["shown"] == "block"
    assert s["escaped"]["shown"] == "none"
    assert s["hovered"]["shown"] == "block"
    assert s["away"]["shown"] == "none"


def test_phone_viewport_shows_cards_without_sideways_scrolling(site: str) -> None:
    async def work(page: Page) -> dict:
        SHOT_DIR.mkdir(parents=True, exist_ok=True)
        result = {}
        for name, path in [("models", "/models"), ("card", "/models/deepseek/deepseek-chat")]:
            await page.open(site + path, PHONE)
            result[name] = await page.js(
                "({scroll: document.documentElement.scrollWidth, width: innerWidth,"
                " head: getComputedStyle(document.querySelector('table.cards thead')).display})"
            )
            await page.screenshot(SHOT_DIR / f"{name}-phone.png")
        return result

    result = asyncio.run(with_page(work))
    for name in ("models", "card"):
        assert result[name]["width"] == 390
        assert result[name]["scroll"] <= 390, name
        assert result[name]["head"] == "none"


def test_everything_a_page_loads_weighs_under_100_kb(site: str) -> None:
    async def work(page: Page) -> dict:
        weights = {}
        for path in ("/", "/models", "/models/openai/gpt-4o-mini", "/providers/deepseek"):
            await page.open(site + path, DESKTOP)
            weights[path] = await page.js(
                "performance.getEntriesByType('navigation')[0].encodedBodySize +"
                " performance.getEntriesByType('resource')"
                ".reduce((n, r) => n + r.encodedBodySize, 0)"
            )
        return weights

    weights = asyncio.run(with_page(work))
    for path, total in weights.items():
        assert 0 < total < 100 * 1024, path
