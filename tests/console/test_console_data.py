"""Your data: the ZIP export, deleting the usage records early, deleting the account."""

import csv
import io
import json
import zipfile

import pytest
from django.test import Client

from accounts.models import AuditEntry, BillingProfile, User
from billing.ledger import ledger_sum
from billing.models import DailyUsage, Generation, LedgerEntry, Wallet
from keys.actions import create_key
from keys.auth import AuthError, authenticate
from keys.models import ApiKey
from tests.console.conftest import Customer, make_customer

pytestmark = pytest.mark.django_db


def test_the_export_zip_holds_profile_keys_usage_ledger_and_invoices(customer: Customer):
    gen_id = customer.settle(cost_micros=4000)
    response = customer.client.post("/dashboard/settings/data/export")
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert set(archive.namelist()) == {
        "profile.json",
        "keys.csv",
        "usage.csv",
        "ledger.csv",
        "invoices.csv",
    }
    assert json.loads(archive.read("profile.json"))["email"] == customer.user.email
    keys = archive.read("keys.csv").decode()
    assert customer.key.display_token in keys and customer.key.digest not in keys
    usage = list(csv.DictReader(io.StringIO(archive.read("usage.csv").decode())))
    assert [row["generation_id"] for row in usage] == [gen_id]
    ledger = archive.read("ledger.csv").decode()
    assert "usage" in ledger and "-0.004000" in ledger


def test_the_export_is_a_post_and_only_ones_own(customer: Customer) -> None:
    assert customer.client.get("/dashboard/settings/data/export").status_code == 405
    other = make_customer("eve@example.com")
    other.settle()
    response = customer.client.post("/dashboard/settings/data/export")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert "eve@example.com" not in archive.read("usage.csv").decode()


def test_deleting_usage_early_keeps_the_money_and_the_totals(customer: Customer) -> None:
    customer.settle(cost_micros=4000)
    customer.settle(cost_micros=1000)
    balance_before = Wallet.objects.get(account=customer.user).balance_micros
    refused = customer.client.post("/dashboard/settings/data/delete-usage", {"confirm": "yes"})
    assert refused.status_code == 302 and Generation.objects.count() == 2
    customer.client.post("/dashboard/settings/data/delete-usage", {"confirm": "DELETE"})
    assert not Generation.objects.filter(account=customer.user).exists()
    assert Wallet.objects.get(account=customer.user).balance_micros == balance_before
    assert ledger_sum(customer.user) == balance_before
    assert LedgerEntry.objects.filter(account=customer.user, kind="usage").count() == 2
    assert sum(u.cost_micros for u in DailyUsage.objects.filter(account=customer.user)) == 5000
    entry = AuditEntry.objects.get(action="usage.delete")
    assert entry.changes == {"records": 2} and entry.actor == customer.user


def test_deleting_the_account_revokes_keys_erases_personal_data_and_keeps_the_books(
    customer: Customer,
) -> None:
    _, token = create_key(account=customer.user, name="second")
    customer.settle(cost_micros=4000)
    BillingProfile.objects.update_or_create(
        account=customer.user, defaults={"legal_name": "Ada Ltd"}
    )
    page = customer.client.get("/dashboard/settings/data").content.decode()
    assert "99.996000 credits" in page and "forfeited" in page and "14-day" in page
    wrong = customer.client.post(
        "/dashboard/settings/data/delete-account",
        {"confirm": "DELETE", "password": "not my password"},
    )
    assert wrong.status_code == 302 and User.objects.get(pk=customer.user.pk).is_active
    response = customer.client.post(
        "/dashboard/settings/data/delete-account",
        {"confirm": "DELETE", "password": "a long enough password"},
    )
    assert response.status_code == 200 and b"Your account is deleted" in response.content
    user = User.objects.get(pk=customer.user.pk)
    assert not user.is_active and "ada@example.com" not in user.email
    assert not user.has_usable_password()
    assert not ApiKey.objects.filter(account=user, revoked_at__isnull=True).exists()
    with pytest.raises(AuthError):
        authenticate(f"Bearer {token}")
    assert BillingProfile.objects.get(account=user).legal_name == ""
    assert not Generation.objects.filter(account=user).exists()
    assert ledger_sum(user) == Wallet.objects.get(account=user).balance_micros
    assert LedgerEntry.objects.filter(account=user).exists()
    assert (
        Client()
        .post(
            "/accounts/login/", {"login": "ada@example.com", "password": "a long enough password"}
        )
        .status_code
        == 200
    )  # the sign-in form again: no such account any more
