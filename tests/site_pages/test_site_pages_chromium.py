"""The legal and trust pages in a real headless Chromium at phone width: no sideways scrolling,
tables stacked as cards like the console's."""

import asyncio
import os
from pathlib import Path

import pytest

from catalog.catalogue_sync import sync_catalogue
from catalog.snapshot import reset_snapshot
from site_pages.models import Incident
from tests.catalog.pages_chromium import CHROMIUM, DESKTOP, PHONE, Page, with_page

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium binary")

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("LOWROUTER_SCREENSHOT_DIR", ROOT / "screenshots")) / "site_pages"
CATALOGUE = ROOT / "tests" / "console" / "catalogue.yaml"
LAYOUT = (
    "({scroll: document.documentElement.scrollWidth, width: innerWidth,"
    " head: (q => q && getComputedStyle(q).display)"
    "(document.querySelector('table.cards thead')),"
    " footer: document.querySelectorAll('footer.site a').length})"
)


def test_legal_and_trust_pages_fit_a_phone_screen(transactional_db: None, live_server) -> None:
    sync_catalogue(CATALOGUE)
    reset_snapshot()
    Incident.objects.create(title="Elevated errors on OpenAI us-east", body="Failing over.")

    async def work(page: Page) -> dict:
        SHOTS.mkdir(parents=True, exist_ok=True)
        seen = {}
        for name in ("status", "pricing", "providers", "impressum", "changelog"):
            await page.open(f"{live_server.url}/{name}", PHONE)
            seen[name] = await page.js(LAYOUT)
            await page.screenshot(SHOTS / f"{name}-phone.png")
        await page.open(f"{live_server.url}/status", DESKTOP)
        await page.screenshot(SHOTS / "status-desktop.png")
        return seen

    seen = asyncio.run(with_page(work))
    reset_snapshot()
    for name, layout in seen.items():
        assert layout["width"] == 390, name
        assert layout["scroll"] <= 390, name
        assert layout["footer"] >= 9, name
    for name in ("status", "providers"):
        assert seen[name]["head"] == "none", name
