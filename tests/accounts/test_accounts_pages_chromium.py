"""The federated sign-in and two-factor pages in a real headless Chromium, at desktop and phone
width: each inside the site's shell, nothing wider than the screen, well under 100 KB.
Screenshots land in ``LOWROUTER_SCREENSHOT_DIR`` (default ``screenshots/``) under ``auth/``."""

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from billing.onboarding import create_account
from tests.accounts.auth_helpers import (
    FakeProvider,
    Identity,
    configure_providers,
    run_fake_provider,
    totp_code,
)
from tests.catalog.pages_chromium import CHROMIUM, DESKTOP, PHONE, Page, with_page

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium binary")

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("LOWROUTER_SCREENSHOT_DIR", ROOT / "screenshots")) / "auth"
PASSWORD = "correct horse battery staple 42"

LAYOUT = """(() => ({
  path: location.pathname,
  shell: !!document.querySelector('header.site') && !!document.querySelector('footer.site'),
  h1: (document.querySelector('main h1') || {}).textContent || '',
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  bytes: performance.getEntriesByType('navigation')[0].transferSize
    + performance.getEntriesByType('resource').reduce((n, r) => n + r.transferSize, 0),
}))()"""


@pytest.fixture
def site(transactional_db: None, live_server: Any, settings: Any, monkeypatch) -> Iterator[str]:
    configure_providers(settings, "github", "google")
    provider = run_fake_provider(monkeypatch)
    fake: FakeProvider = next(provider)
    fake.identity = Identity("9001", "newcomer@example.com")
    yield live_server.url
    next(provider, None)


async def look(page: Page, url: str, name: str) -> dict[str, Any]:
    """Open ``url`` at both widths, keep a screenshot of each, return the layout facts."""
    seen: dict[str, Any] = {}
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.open(url, viewport)
        seen[width] = await page.js(LAYOUT)
        await page.screenshot(SHOTS / f"{name}-{width}.png")
    return seen


async def submit(page: Page, selector: str, values: dict[str, str]) -> None:
    fill = "".join(
        f"document.querySelector({json.dumps(f'{selector} [name={k}]')}).value = {json.dumps(v)};"
        for k, v in values.items()
    )
    await page.js(fill + f"document.querySelector({json.dumps(selector)}).requestSubmit();")
    await page.wait_event("Page.loadEventFired")


def assert_in_shell(seen: dict[str, dict[str, Any]]) -> None:
    for name, widths in seen.items():
        for width, facts in widths.items():
            assert facts["shell"], (name, width, facts)
            assert facts["overflow"] <= 0, (name, width, facts)
            assert 0 < facts["bytes"] < 100_000, (name, width, facts)


def test_federated_sign_up_pages_are_in_the_shell_at_both_widths(site: str) -> None:
    async def work(page: Page) -> dict[str, Any]:
        seen = {
            "login": await look(page, site + "/accounts/login/", "login-with-providers"),
            "signup": await look(page, site + "/accounts/signup/", "signup-with-providers"),
            "provider-confirm": await look(
                page, site + "/accounts/github/login/", "provider-confirm"
            ),
        }
        # Continue to the (fake) provider, which sends the browser back with a code.
        await page.js("document.querySelector('main form').requestSubmit()")
        await page.wait_event("Page.loadEventFired")
        signup = site + "/accounts/3rdparty/signup/"
        seen["social-signup"] = await look(page, signup, "social-signup")
        seen["cancelled"] = await look(
            page, site + "/accounts/3rdparty/login/cancelled/", "provider-cancelled"
        )
        seen["error"] = await look(page, site + "/accounts/3rdparty/login/error/", "provider-error")
        await page.open(site + "/accounts/3rdparty/signup/", DESKTOP)
        await submit(page, "main form", {"country": "FR"})
        seen["landed"] = await page.js("location.pathname")
        seen["connections"] = await look(page, site + "/accounts/3rdparty/", "connections")
        return seen

    seen = asyncio.run(with_page(work))
    assert seen.pop("landed") == "/dashboard"
    assert seen["social-signup"]["desktop"]["path"] == "/accounts/3rdparty/signup/"
    assert_in_shell(seen)


def test_two_factor_pages_are_in_the_shell_at_both_widths(site: str) -> None:
    create_account(email="careful@example.com", password=PASSWORD, verified=True)
    guarded = create_account(email="guarded@example.com", password=PASSWORD, verified=True)
    TOTP.activate(guarded, generate_totp_secret())

    async def work(page: Page) -> dict[str, Any]:
        login = {"login": "careful@example.com", "password": PASSWORD}
        await page.open(site + "/accounts/login/", DESKTOP)
        await submit(page, "main form", login)
        seen = {"index": await look(page, site + "/accounts/2fa/", "2fa-index")}
        # The integrator's account pages share allauth's buttons, restyled here.
        seen["email"] = await look(page, site + "/accounts/email/", "email")
        seen["reauthenticate"] = await look(
            page, site + "/accounts/2fa/totp/activate/", "reauthenticate"
        )
        await submit(page, "main form", {"password": PASSWORD})
        seen["activate"] = await look(page, site + "/accounts/2fa/totp/activate/", "totp-activate")
        secret = await page.js("document.getElementById('authenticator_secret').value")
        await submit(page, "main form", {"code": totp_code(secret)})
        seen["codes"] = await look(page, site + "/accounts/2fa/recovery-codes/", "recovery-codes")
        seen["on"] = await look(page, site + "/accounts/2fa/", "2fa-index-on")
        seen["generate"] = await look(
            page, site + "/accounts/2fa/recovery-codes/generate/", "recovery-codes-generate"
        )
        seen["deactivate"] = await look(
            page, site + "/accounts/2fa/totp/deactivate/", "totp-deactivate"
        )
        await page.open(site + "/accounts/logout/", DESKTOP)
        await submit(page, "main form", {})
        await page.open(site + "/accounts/login/", DESKTOP)
        await submit(page, "main form", {**login, "login": "guarded@example.com"})
        seen["authenticate"] = await look(page, site + "/accounts/2fa/authenticate/", "2fa-code")
        return seen

    seen = asyncio.run(with_page(work))
    assert seen["activate"]["desktop"]["path"] == "/accounts/2fa/totp/activate/"
    for name in ("codes", "on", "generate", "deactivate"):
        assert seen[name]["phone"]["path"].startswith("/accounts/2fa/"), seen[name]
    assert seen["authenticate"]["phone"]["path"] == "/accounts/2fa/authenticate/"
    assert_in_shell(seen)
