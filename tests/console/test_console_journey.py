"""A customer's journey through the console in a real headless Chromium, on a live gateway.

Sign in as a funded customer who has made requests through the gateway (plain, streamed, two
models, one failed), check the dashboard against the API, open a transaction, filter, export,
top up through the fake Stripe, and use the phone layout. Screenshots of every page at desktop
and phone width land in ``LOWROUTER_SCREENSHOT_DIR`` (default: ``screenshots/`` in the
checkout, git-ignored) for a person to look at.
"""

import asyncio
import csv
import io
import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from billing.models import Generation
from catalog.snapshot import mark_catalog_changed
from tests.billing.payments_helpers import FakeStripe, report_checkout_paid
from tests.catalog.pages_chromium import CHROMIUM, DESKTOP, PHONE, Page, with_page
from tests.conftest import add_model, add_offering
from tests.factories import make_funded

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium binary")

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("LOWROUTER_SCREENSHOT_DIR", ROOT / "screenshots")) / "console"
PASSWORD = "correct horse battery staple"


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def sign_in(page: Page, site: str, email: str) -> None:
    await page.open(site + "/accounts/login/", DESKTOP)
    await page.js(
        f"document.querySelector('[name=login]').value = {json.dumps(email)};"
        f"document.querySelector('[name=password]').value = {json.dumps(PASSWORD)};"
        "document.querySelector('form[action=\"/accounts/login/\"]').submit();"
    )
    await page.wait_event("Page.loadEventFired")


async def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(SHOTS / f"{name}.png")


def test_a_customer_follows_their_usage_and_tops_up(
    gateway, catalogue, upstream, fake_stripe: FakeStripe
) -> None:
    large = add_model("demo/echo-large")
    add_offering(large, catalogue.provider)
    mark_catalog_changed()
    customer = make_funded("journey@example.com", credits=Decimal("50"))
    customer.user.set_password(PASSWORD)
    customer.user.save()
    from accounts.models import BillingProfile

    BillingProfile.objects.create(account=customer.user, country="FR", address="1 rue de Test")
    client = openai.OpenAI(base_url=gateway.api, api_key=customer.token, max_retries=0)
    client.chat.completions.create(
        model="demo/echo-small", messages=[{"role": "user", "content": "hello"}]
    )
    client.chat.completions.create(
        model="demo/echo-large", messages=[{"role": "user", "content": "hello there"}]
    )
    for _ in client.chat.completions.create(
        model="demo/echo-small", messages=[{"role": "user", "content": "stream"}], stream=True
    ):
        pass
    upstream.config.fault = "http_error"
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(
            model="demo/echo-large", messages=[{"role": "user", "content": "fails"}]
        )
    upstream.config.fault = "none"
    records = list(Generation.objects.filter(account=customer.user))
    assert len(records) == 4 and {r.status for r in records} == {"ok", "upstream_error"}
    api_balance = httpx.get(
        gateway.api + "/credits", headers={"Authorization": f"Bearer {customer.token}"}
    ).json()["balance"]
    site = gateway.url

    async def journey(page: Page) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        await sign_in(page, site, customer.user.email)
        seen["after_sign_in"] = await page.js("location.pathname")
        await shoot(page, "dashboard-desktop")
        seen["dashboard"] = await page.js("document.body.innerText")
        # Open the newest transaction from the table.
        await page.js("document.querySelector('table.tx tbody a').click()")
        await page.wait_event("Page.loadEventFired")
        seen["transaction_url"] = await page.js("location.pathname")
        seen["transaction"] = await page.js("document.body.innerText")
        await shoot(page, "transaction-desktop")
        # Filter by one model: the URL carries it and every widget follows.
        await page.open(site + "/dashboard", DESKTOP)
        await page.js(
            "const f = document.querySelector('details.filters-panel form');"
            "f.querySelector('[name=model]').value = 'demo/echo-large'; f.submit();"
        )
        await page.wait_event("Page.loadEventFired")
        seen["filtered_url"] = await page.js("location.search")
        seen["filtered"] = await page.js("document.body.innerText")
        seen["csv"] = await page.js(
            "fetch('/dashboard/export.csv').then(r => r.text())", await_promise=True
        )
        # Top up: the all-in price first, then the checkout the fake Stripe serves.
        await page.open(site + "/dashboard/credits", DESKTOP)
        await shoot(page, "credits-desktop")
        await page.js(
            "document.querySelector('#amount').value = '20';"
            "document.querySelector('#add form').submit();"
        )
        await page.wait_event("Page.loadEventFired")
        seen["quote"] = await page.js("document.body.innerText")
        seen["checkout_status"] = await page.js(
            "fetch(document.querySelector('form[action=\"/billing/topup/confirm\"]').action,"
            " {method: 'POST', body: new FormData(document.querySelector("
            "'form[action=\"/billing/topup/confirm\"]')), redirect: 'manual'})"
            ".then(r => r.type)",
            await_promise=True,
        )
        return seen

    seen = asyncio.run(with_page(journey))
    assert seen["after_sign_in"] == "/dashboard"
    dashboard = seen["dashboard"]
    assert f"{Decimal(api_balance).normalize():f}" in dashboard.replace(",", "")
    tokens_today = sum(r.total_tokens for r in records)
    assert f"{tokens_today:,} tokens" in dashboard
    newest = max(records, key=lambda r: r.created_at)
    assert seen["transaction_url"] == f"/dashboard/transactions/{newest.id}"
    assert newest.id in seen["transaction"]
    assert "model=demo%2Fecho-large" in seen["filtered_url"]
    large_tokens = sum(r.total_tokens for r in records if r.resolved_model == "demo/echo-large")
    assert f"{large_tokens:,} tokens" in seen["filtered"]
    rows = list(csv.DictReader(io.StringIO(seen["csv"])))
    assert sorted(r["generation_id"] for r in rows) == sorted(r.id for r in records)
    by_id = {r.id: r for r in records}
    for row in rows:
        record = by_id[row["generation_id"]]
        assert int(row["total_tokens"]) == record.total_tokens
        assert Decimal(row["cost_credits"]) * 1_000_000 == record.cost_micros
    assert "Total" in seen["quote"] and "VAT" in seen["quote"]
    assert seen["checkout_status"] == "opaqueredirect"

    # Stripe reports the payment: the webhook credits the balance and the history shows it.
    report_checkout_paid(site, customer.user, event_id="evt_journey")

    async def after_top_up(page: Page) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        await sign_in(page, site, customer.user.email)
        await page.open(site + "/dashboard/credits", DESKTOP)
        seen["credits"] = await page.js("document.body.innerText")
        # The phone layout: the menu collapses behind its button, the table becomes cards.
        for path, name in [
            ("/dashboard", "dashboard"),
            ("/dashboard/credits", "credits"),
            (f"/dashboard/transactions/{newest.id}", "transaction"),
        ]:
            await page.open(site + path, PHONE)
            await shoot(page, f"{name}-phone")
        await page.open(site + "/dashboard", PHONE)
        seen["nav_before"] = await page.js(
            "getComputedStyle(document.querySelector('#site-nav')).display"
        )
        await page.js("document.querySelector('.menu-button').click()")
        seen["nav_after"] = await page.js(
            "getComputedStyle(document.querySelector('#site-nav')).display"
        )
        await shoot(page, "dashboard-phone-menu")
        seen["thead"] = await page.js(
            "getComputedStyle(document.querySelector('table.tx thead')).display"
        )
        seen["overflow"] = await page.js(
            "document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
        return seen

    seen = asyncio.run(with_page(after_top_up))
    credits_page = seen["credits"]
    assert "Top-up" in credits_page and "+2,000.00" in credits_page.replace("\t", " ")
    assert seen["nav_before"] == "none" and seen["nav_after"] == "flex"
    assert seen["thead"] == "none" and seen["overflow"] is False
