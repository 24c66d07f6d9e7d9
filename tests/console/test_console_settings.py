"""Settings: billing details with a VIES check over HTTP, the eco baseline, notifications (the
low-balance email once per crossing), and the account's audit log."""

import csv
import io

import pytest
from django.core import mail

from accounts.models import AuditEntry, BillingProfile, Preferences
from billing.ledger import post_entry
from billing.models import LedgerKind
from billing.notifications import send_low_balance_alerts
from tests.billing.payments_helpers import FakeVies
from tests.console.conftest import Customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def vies(fake_vies: FakeVies, settings) -> FakeVies:
    fake_vies.valid = {"DE136695976"}
    settings.LOWROUTER_VIES_CHECKER = "billing.vat.ViesRestChecker"
    return fake_vies


def save_billing(customer: Customer, **fields: str):
    data = {"section": "billing", "legal_name": "", "address": "", "country": "", **fields}
    return customer.client.post("/dashboard/settings", data)


def test_a_vat_number_confirmed_by_vies_is_stored_with_its_date(customer: Customer, vies) -> None:
    response = save_billing(
        customer,
        legal_name="Dvořák s.r.o.",
        address="Hauptstraße 1, Berlin",
        country="DE",
        vat_number="DE 136 695 976",
    )
    assert response.status_code == 302
    profile = BillingProfile.objects.get(account=customer.user)
    assert (profile.legal_name, profile.country, profile.vat_number) == (
        "Dvořák s.r.o.",
        "DE",
        "DE136695976",
    )
    assert profile.vat_number_validated_at is not None and vies.calls == ["DE136695976"]
    page = customer.client.get("/dashboard/settings").content.decode()
    assert "reverse charge applies from now on" in page and "confirmed by VIES" in page
    entry = AuditEntry.objects.get(action="billing_details.update", account=customer.user)
    assert entry.changes["vat_number"] == ["", "DE136695976"]


def test_an_unknown_vat_number_is_saved_but_not_confirmed(customer: Customer, vies) -> None:
    save_billing(customer, country="DE", vat_number="DE136695984")
    profile = BillingProfile.objects.get(account=customer.user)
    assert profile.vat_number == "DE136695984" and profile.vat_number_validated_at is None


@pytest.mark.parametrize(
    "fields, error",
    [
        ({"country": "DE", "vat_number": "DE123"}, "not a valid EU VAT number"),
        ({"country": "FR", "vat_number": "DE136695976"}, "not from the country chosen"),
        ({"country": "XX"}, "Select a valid choice"),
        ({"country": ""}, "This field is required"),
    ],
)
def test_bad_billing_details_are_form_errors(customer: Customer, vies, fields, error) -> None:
    response = save_billing(customer, **fields)
    assert response.status_code == 400 and error in response.content.decode()
    assert vies.calls == []


def test_top_up_links_to_the_settings_when_the_country_is_missing(customer: Customer) -> None:
    BillingProfile.objects.filter(account=customer.user).delete()
    page = customer.client.get("/billing/topup").content.decode()
    assert 'href="/dashboard/settings#billing"' in page


def test_the_chosen_eco_baseline_is_used_by_the_dashboard(customer: Customer) -> None:
    response = customer.client.post(
        "/dashboard/settings",
        {"section": "baseline", "eco_baseline_model": "openai/gpt-4o"},
    )
    assert response.status_code == 302
    assert Preferences.of(customer.user.pk).eco_baseline_model == "openai/gpt-4o"
    dashboard = customer.client.get("/dashboard").content.decode()
    assert "openai/gpt-4o</strong> (your choice)" in dashboard
    bad = customer.client.post(
        "/dashboard/settings", {"section": "baseline", "eco_baseline_model": "demo/nope"}
    )
    assert bad.status_code == 400


def test_the_low_balance_email_goes_once_per_crossing(customer: Customer) -> None:
    customer.client.post(
        "/dashboard/settings",
        {"section": "notifications", "low_balance_threshold": "50", "invoice_emails": "on"},
    )
    assert send_low_balance_alerts() == 0  # 100 credits: above the threshold
    post_entry(account=customer.user, kind=LedgerKind.ADJUSTMENT, amount_micros=-60_000_000)
    assert send_low_balance_alerts() == 1
    assert send_low_balance_alerts() == 0  # still below: no second email
    (message,) = mail.outbox
    assert message.to == [customer.user.email] and "40.00 credits" in message.body
    post_entry(account=customer.user, kind=LedgerKind.TOPUP, amount_micros=30_000_000)
    assert send_low_balance_alerts() == 0  # back above: re-armed
    post_entry(account=customer.user, kind=LedgerKind.ADJUSTMENT, amount_micros=-30_000_000)
    assert send_low_balance_alerts() == 1 and len(mail.outbox) == 2


def test_a_threshold_that_is_not_a_number_is_a_form_error(customer: Customer) -> None:
    for value in ("NaN", "-5", "1e999999"):
        response = customer.client.post(
            "/dashboard/settings", {"section": "notifications", "low_balance_threshold": value}
        )
        assert response.status_code == 400
    assert Preferences.of(customer.user.pk).low_balance_threshold is None


def test_the_audit_log_shows_the_accounts_changes_and_exports_them(customer: Customer) -> None:
    customer.client.post(
        f"/dashboard/keys/{customer.key.pk}",
        {"name": "renamed", "daily_credit_limit": "1", "monthly_credit_limit": "", "enabled": "on"},
    )
    page = customer.client.get("/dashboard/settings/audit").content.decode()
    assert "key.update" in page and "main → renamed" in page and "you" in page
    response = customer.client.get("/dashboard/settings/audit?format=csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {r["action"] for r in rows} >= {"key.create", "key.update"}
    assert all(r["actor"] in ("you", "system") for r in rows)


def test_nobody_sees_another_accounts_audit_log(customer: Customer) -> None:
    from tests.console.conftest import make_customer

    other = make_customer("eve@example.com")
    page = customer.client.get("/dashboard/settings/audit").content.decode()
    assert f"key:{other.key.pk}" not in page


def test_the_monthly_summary_goes_once_to_those_who_want_it(customer: Customer) -> None:
    from datetime import date

    from billing.notifications import send_monthly_summaries
    from tests.console.conftest import NOW, make_customer

    customer.settle(at=NOW.replace(day=3), cost_micros=4000, prompt=100, completion=50)
    quiet = make_customer("quiet@example.com")
    quiet.settle(at=NOW.replace(day=3))
    quiet.client.post(
        "/dashboard/settings", {"section": "notifications", "invoice_emails": "on"}
    )  # monthly summary unticked
    january = date(2027, 1, 1)
    assert send_monthly_summaries(today=january) == 1
    assert send_monthly_summaries(today=january) == 0  # once per month
    (message,) = mail.outbox
    assert message.to == [customer.user.email]
    assert "December 2026" in message.subject and "150 tokens" in message.body


def test_invoice_emails_follow_the_setting(customer: Customer, monkeypatch) -> None:
    from django.db import transaction

    from billing.invoices import enqueue_invoice_email
    from billing.models import Invoice

    queued: list[int] = []
    monkeypatch.setattr("billing.invoices.send_invoice_email.delay", queued.append)
    monkeypatch.setattr(transaction, "on_commit", lambda send: send())
    invoice = Invoice(account=customer.user, pk=7)
    enqueue_invoice_email(invoice)
    assert queued == [7]  # on by default
    customer.client.post("/dashboard/settings", {"section": "notifications"})  # all unticked
    enqueue_invoice_email(invoice)
    assert queued == [7]  # not again: the customer turned invoice emails off
