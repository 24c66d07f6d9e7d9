"""A new customer serves themselves from sign-up to account deletion, in a real headless
Chromium on the live gateway (the pages and the API are served by the same ASGI app).

Register with a country, open the confirmation email (Django's outbox: the gateway runs in this
process), sign in unverified and meet the refused key creation with its Resend offer, verify,
set billing details with a VAT number the fake VIES knows, top up through the fake Stripe,
create a key limited to one model with a daily limit, call the API with the OpenAI SDK, lower
the limit and see the next request refused, revoke and see 401, download the data export,
delete the account and see the remaining key refused and the personal data gone.
"""

import asyncio
import base64
import csv
import io
import json
import re
import zipfile
from typing import Any

import openai
import pytest
from allauth.account.models import EmailAddress
from django.core import mail

from accounts.models import BillingProfile, User
from billing.models import Generation, Invoice, VatTreatment
from catalog.snapshot import mark_catalog_changed
from keys.models import ApiKey
from tests.billing.payments_helpers import FakeStripe, FakeVies, report_checkout_paid
from tests.catalog.pages_chromium import CHROMIUM, DESKTOP, Page, with_page
from tests.conftest import add_model, add_offering
from tests.console.test_console_journey import shoot

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium binary")

EMAIL = "grace@example.com"
PASSWORD = "correct horse battery staple 19"
VAT_NUMBER = "DE136695976"


async def submit(page: Page, form: str, values: dict[str, Any]) -> None:
    """Fill the form matched by the CSS selector ``form`` and submit it as a person would;
    a list value selects those options of a multiple select."""
    await page.js(
        f"{{ const f = document.querySelector({json.dumps(form)});"
        f"for (const [name, value] of Object.entries({json.dumps(values)})) {{"
        "  const field = f.querySelector(`[name=${name}]`);"
        "  if (Array.isArray(value)) {"
        "    for (const o of field.options) o.selected = value.includes(o.value);"
        "  } else if (field.type === 'checkbox') { field.checked = value; }"
        "  else { field.value = value; }"
        "}"
        "HTMLFormElement.prototype.submit.call(f); }"
    )
    await page.wait_event("Page.loadEventFired")


async def text(page: Page) -> str:
    return await page.js("document.body.innerText")


async def post_form(page: Page, form: str) -> dict[str, Any]:
    """Post a form of the page with fetch (no navigation): its status and body."""
    return await page.js(
        f"{{ const f = document.querySelector({json.dumps(form)});"
        "fetch(f.action, {method: 'POST', body: new FormData(f), redirect: 'manual'})"
        ".then(async r => ({status: r.status, type: r.type, body: await r.text()})) }",
        await_promise=True,
    )


def confirmation_path(message: mail.EmailMessage) -> str:
    found = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+)", message.body)
    assert found, message.body
    return found.group(1)


def chat(api: str, token: str, model: str = "demo/echo-small") -> Any:
    client = openai.OpenAI(base_url=api, api_key=token, max_retries=0)
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}]
    )


def refusal(api: str, token: str, model: str = "demo/echo-small") -> tuple[int, str | None]:
    with pytest.raises(openai.APIStatusError) as caught:
        chat(api, token, model)
    return caught.value.status_code, caught.value.code


def test_a_customer_signs_up_pays_uses_a_key_and_deletes_the_account(
    gateway, catalogue, upstream, fake_stripe: FakeStripe, fake_vies: FakeVies, settings
) -> None:
    add_offering(add_model("demo/echo-large"), catalogue.provider)
    mark_catalog_changed()
    fake_vies.valid = {VAT_NUMBER}
    settings.LOWROUTER_VIES_CHECKER = "billing.vat.ViesRestChecker"
    site, api = gateway.url, gateway.api
    mail.outbox.clear()

    async def until_verified(page: Page) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        await page.open(site + "/accounts/signup/", DESKTOP)
        await shoot(page, "signup-desktop")
        await submit(
            page,
            "form[action='/accounts/signup/']",
            {"email": EMAIL, "country": "DE", "password1": PASSWORD, "password2": PASSWORD},
        )
        seen["emails_after_signup"] = len(mail.outbox)
        # Sign out, then sign in again while still unverified.
        await page.open(site + "/accounts/logout/", DESKTOP)
        await submit(page, "form[action='/accounts/logout/']", {})
        await page.open(site + "/accounts/login/", DESKTOP)
        await submit(
            page, "form[action='/accounts/login/']", {"login": EMAIL, "password": PASSWORD}
        )
        seen["after_sign_in"] = await page.js("location.pathname")
        await page.open(site + "/dashboard/keys", DESKTOP)
        await shoot(page, "keys-unverified-desktop")
        seen["keys_page"] = await text(page)
        seen["create_form"] = await page.js("!!document.querySelector('form.key-form')")
        seen["forced_create"] = await page.js(
            "{ const body = new FormData();"
            "body.append('csrfmiddlewaretoken',"
            " document.querySelector('[name=csrfmiddlewaretoken]').value);"
            "body.append('name', 'sneaky'); body.append('enabled', 'on');"
            "fetch('/dashboard/keys', {method: 'POST', body}).then(r => r.status) }",
            await_promise=True,
        )
        await submit(page, "form[action='/accounts/resend-verification/']", {})
        seen["resent"] = await text(page)
        seen["emails_after_resend"] = len(mail.outbox)
        # The newest link verifies the address (allauth asks to confirm it with a POST).
        await page.open(site + confirmation_path(mail.outbox[-1]), DESKTOP)
        await submit(page, "form[action^='/accounts/confirm-email/']", {})
        await page.open(site + "/dashboard/keys", DESKTOP)
        seen["create_form_after"] = await page.js("!!document.querySelector('form.key-form')")
        return seen

    seen = asyncio.run(with_page(until_verified))
    assert seen["emails_after_signup"] == 1
    assert mail.outbox[0].to == [EMAIL] and "/accounts/confirm-email/" in mail.outbox[0].body
    assert seen["after_sign_in"] == "/dashboard"
    assert "Verify your email address" in seen["keys_page"]
    assert "Resend the verification email" in seen["keys_page"]
    assert seen["create_form"] is False and seen["forced_create"] == 403
    assert seen["emails_after_resend"] == 2 and mail.outbox[1].to == [EMAIL]
    user = User.objects.get(email=EMAIL)
    assert not ApiKey.objects.filter(account=user).exists()
    assert EmailAddress.objects.get(user=user).verified
    assert seen["create_form_after"] is True

    async def billing_and_top_up(page: Page) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        await sign_in(page, site)
        await page.open(site + "/dashboard/settings", DESKTOP)
        await submit(
            page,
            "#billing form",
            {
                "legal_name": "Hopper GmbH",
                "address": "Hauptstraße 1, Berlin",
                "country": "DE",
                "vat_number": VAT_NUMBER,
            },
        )
        await shoot(page, "settings-billing-desktop")
        seen["settings"] = await text(page)
        await page.open(site + "/dashboard/credits", DESKTOP)
        await submit(page, "#add form", {"amount": "20"})
        await shoot(page, "topup-quote-desktop")
        seen["quote"] = await text(page)
        seen["checkout"] = await post_form(page, "form[action='/billing/topup/confirm']")
        return seen

    seen = asyncio.run(with_page(billing_and_top_up))
    assert "reverse charge applies from now on" in seen["settings"]
    assert fake_vies.calls and set(fake_vies.calls) == {VAT_NUMBER}
    assert "Total to pay" in seen["quote"] and "VAT 0" in seen["quote"]
    assert seen["checkout"]["type"] == "opaqueredirect"
    report_checkout_paid(site, user, event_id="evt_self_service")
    # The billing details just saved are the buyer block of the invoice of this top-up.
    invoice = Invoice.objects.get(account=user)
    assert invoice.buyer["legal_name"] == "Hopper GmbH"
    assert invoice.buyer["vat_number"] == VAT_NUMBER and invoice.buyer["country"] == "DE"
    assert invoice.vat_treatment == VatTreatment.REVERSE_CHARGE and invoice.vat_cents == 0

    async def make_key(page: Page) -> dict[str, Any]:
        await sign_in(page, site)
        await page.open(site + "/dashboard/keys", DESKTOP)
        await submit(
            page,
            "form.key-form",
            {"name": "ci", "models": ["demo/echo-small"], "daily_credit_limit": "5"},
        )
        await shoot(page, "key-token-desktop")
        return {"token": await page.js("document.querySelector('code.token').innerText")}

    token = asyncio.run(with_page(make_key))["token"]
    key = ApiKey.objects.get(account=user, name="ci")
    assert key.models == ["demo/echo-small"] and str(key.daily_credit_limit) == "5.00"
    assert chat(api, token).choices[0].message.content
    generation_id = Generation.objects.get(account=user).pk
    assert refusal(api, token, "demo/echo-large") == (403, "model_not_allowed")

    async def limit_rotate_revoke(page: Page) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        await sign_in(page, site)
        # A limit below the worst case of the next request (1000 output tokens' worth).
        await page.open(site + f"/dashboard/keys/{key.pk}", DESKTOP)
        await submit(page, "form.key-form", {"daily_credit_limit": "0.01"})
        seen["limited"] = refusal(api, token)
        # A second key with the same scope, kept to see the deletion refuse it.
        await page.open(site + "/dashboard/keys", DESKTOP)
        await submit(page, f"form[action='/dashboard/keys/{key.pk}/rotate']", {})
        seen["rotated_token"] = await page.js("document.querySelector('code.token').innerText")
        await page.open(site + f"/dashboard/keys/{key.pk}/revoke", DESKTOP)
        await submit(page, f"form[action='/dashboard/keys/{key.pk}/revoke']", {})
        seen["revoked"] = refusal(api, token)
        await shoot(page, "keys-after-revoke-desktop")
        await page.open(site + "/dashboard/settings/data", DESKTOP)
        seen["export"] = await page.js(
            "{ const f = document.querySelector('form[action$=\"/data/export\"]');"
            "fetch(f.action, {method: 'POST', body: new FormData(f)})"
            ".then(r => r.arrayBuffer()).then(b => {"
            "  let s = ''; for (const c of new Uint8Array(b)) s += String.fromCharCode(c);"
            "  return btoa(s); }) }",
            await_promise=True,
        )
        await submit(
            page,
            "form[action='/dashboard/settings/data/delete-account']",
            {"confirm": "DELETE", "password": PASSWORD},
        )
        await shoot(page, "account-deleted-desktop")
        seen["deleted"] = await text(page)
        await page.open(site + "/accounts/login/", DESKTOP)
        await submit(
            page, "form[action='/accounts/login/']", {"login": EMAIL, "password": PASSWORD}
        )
        seen["sign_in_after_delete"] = await page.js("location.pathname")
        return seen

    seen = asyncio.run(with_page(limit_rotate_revoke))
    assert seen["limited"] == (429, "key_daily_limit_exceeded")
    assert seen["revoked"][0] == 401
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(seen["export"]))) as archive:
        profile = json.loads(archive.read("profile.json"))
        keys_csv = archive.read("keys.csv").decode()
        usage_csv = archive.read("usage.csv").decode()
    assert profile["email"] == EMAIL and profile["billing"]["vat_number"] == VAT_NUMBER
    assert "ci" in keys_csv and token not in keys_csv
    assert (generation_id,) == tuple(
        r["generation_id"] for r in csv.DictReader(io.StringIO(usage_csv))
    )

    assert refusal(api, seen["rotated_token"])[0] == 401
    assert seen["sign_in_after_delete"] == "/accounts/login/"
    user.refresh_from_db()
    assert user.email != EMAIL and not user.is_active and not user.has_usable_password()
    assert not User.objects.filter(email=EMAIL).exists()
    assert not EmailAddress.objects.filter(user=user).exists()
    profile_row = BillingProfile.objects.get(account=user)
    assert (profile_row.legal_name, profile_row.address, profile_row.vat_number) == ("", "", "")
    # The invoice keeps the buyer it was issued to: an accounting record the law keeps.
    assert Invoice.objects.get(account=user).buyer["legal_name"] == "Hopper GmbH"


async def sign_in(page: Page, site: str) -> None:
    await page.open(site + "/accounts/login/", DESKTOP)
    await submit(page, "form[action='/accounts/login/']", {"login": EMAIL, "password": PASSWORD})
