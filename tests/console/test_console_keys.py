"""The keys pages: create (token once), edit, disable, revoke, rotate, and who may do what."""

import re
from decimal import Decimal

import pytest
from allauth.account.models import EmailAddress
from django.test import Client

from accounts.models import AuditEntry
from keys.models import ApiKey
from keys.tokens import digest_token
from tests.console.conftest import Customer, make_customer

pytestmark = pytest.mark.django_db


def create(customer: Customer, **fields: object):
    data = {"name": "ci", "daily_credit_limit": "", "monthly_credit_limit": "", **fields}
    return customer.client.post("/dashboard/keys", data)


def token_in(html: str) -> str:
    found = re.search(r'<code class="token">([^<]+)</code>', html)
    assert found, html
    return found.group(1)


def test_creating_a_key_shows_its_token_once_and_audits_it(customer: Customer) -> None:
    response = create(
        customer,
        name="browser",
        models=["demo/echo-small"],
        daily_credit_limit="0.50",
        prefer_low_carbon="on",
        enabled="on",
    )
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    token = token_in(response.content.decode())
    key = ApiKey.objects.get(digest=digest_token(token))
    assert (key.name, key.models, key.daily_credit_limit) == (
        "browser",
        ["demo/echo-small"],
        Decimal("0.50"),
    )
    assert key.prefer_low_carbon and key.enabled
    entry = AuditEntry.objects.get(action="key.create", target=f"key:{key.pk}")
    assert entry.actor == customer.user and entry.changes["daily_credit_limit"] == "0.50"
    listing = customer.client.get("/dashboard/keys").content.decode()
    assert token not in listing and key.display_token in listing


def test_an_unverified_customer_cannot_create_a_key_and_is_offered_a_new_link(db) -> None:
    customer = make_customer("new@example.com")
    EmailAddress.objects.filter(user=customer.user).update(verified=False)
    page = customer.client.get("/dashboard/keys").content.decode()
    assert "Verify your email address" in page and "Resend the verification email" in page
    response = create(customer)
    assert response.status_code == 403
    assert not ApiKey.objects.filter(name="ci").exists()


@pytest.mark.parametrize(
    "fields, error",
    [
        ({"daily_credit_limit": "NaN"}, "Enter a number"),
        ({"daily_credit_limit": "1e999999"}, "less than or equal to"),
        ({"daily_credit_limit": "-1"}, "greater than or equal to 0"),
        ({"monthly_credit_limit": "99999999999"}, "less than or equal to"),
        ({"expires_at": "2001-01-01T10:00"}, "must be in the future"),
        ({"models": ["no/such-model"]}, "Select a valid choice"),
        ({"region": "mars-1"}, "Select a valid choice"),
        ({"name": ""}, "This field is required"),
    ],
)
def test_bad_key_fields_are_form_errors(customer: Customer, fields: dict, error: str) -> None:
    response = create(customer, **fields)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not ApiKey.objects.filter(name="ci").exists()


def test_editing_a_key_changes_its_policy_and_audits_before_and_after(customer: Customer):
    key = customer.key
    response = customer.client.post(
        f"/dashboard/keys/{key.pk}",
        {"name": "main", "daily_credit_limit": "2.00", "monthly_credit_limit": "", "enabled": "on"},
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.daily_credit_limit == Decimal("2.00")
    entry = AuditEntry.objects.get(action="key.update", target=f"key:{key.pk}")
    assert entry.changes == {"daily_credit_limit": [None, "2.00"]}


def test_disabling_and_enabling_a_key(customer: Customer) -> None:
    customer.client.post(f"/dashboard/keys/{customer.key.pk}/toggle")
    customer.key.refresh_from_db()
    assert not customer.key.enabled
    customer.client.post(f"/dashboard/keys/{customer.key.pk}/toggle")
    customer.key.refresh_from_db()
    assert customer.key.enabled


def test_revoking_asks_first_and_is_final(customer: Customer) -> None:
    key = customer.key
    page = customer.client.get(f"/dashboard/keys/{key.pk}/revoke").content.decode()
    assert "Revoking is final" in page
    customer.client.post(f"/dashboard/keys/{key.pk}/revoke")
    key.refresh_from_db()
    assert key.revoked_at is not None and not key.enabled
    customer.client.post(f"/dashboard/keys/{key.pk}/toggle")
    key.refresh_from_db()
    assert not key.enabled  # a revoked key cannot be switched back on
    assert (
        "can no longer be changed"
        in customer.client.get(f"/dashboard/keys/{key.pk}").content.decode()
    )
    listing = customer.client.get("/dashboard/keys").content.decode()
    assert 'class="revoked"' in listing and f"/dashboard?key={key.pk}" in listing


def test_rotating_makes_a_key_with_the_same_scope_and_keeps_the_old_one(customer: Customer):
    customer.client.post(
        f"/dashboard/keys/{customer.key.pk}",
        {
            "name": "main",
            "models": ["demo/echo-small"],
            "region": "eu-west",
            "daily_credit_limit": "3",
            "monthly_credit_limit": "",
            "enabled": "on",
        },
    )
    response = customer.client.post(f"/dashboard/keys/{customer.key.pk}/rotate")
    token = token_in(response.content.decode())
    new = ApiKey.objects.get(digest=digest_token(token))
    assert new.pk != customer.key.pk and new.name == "main (rotated)"
    assert (new.models, new.region, new.daily_credit_limit) == (
        ["demo/echo-small"],
        "eu-west",
        Decimal("3.00"),
    )
    customer.key.refresh_from_db()
    assert customer.key.revoked_at is None and customer.key.enabled


@pytest.mark.parametrize(
    "suffix, method",
    [
        ("", "get"),
        ("/toggle", "post"),
        ("/revoke", "get"),
        ("/revoke", "post"),
        ("/rotate", "post"),
    ],
)
def test_another_accounts_key_is_a_404(customer: Customer, suffix: str, method: str) -> None:
    other = make_customer("eve@example.com")
    response = getattr(customer.client, method)(f"/dashboard/keys/{other.key.pk}{suffix}")
    assert response.status_code == 404
    other.key.refresh_from_db()
    assert other.key.enabled and other.key.revoked_at is None


def test_anonymous_visitors_are_sent_to_sign_in(db: None) -> None:
    response = Client().get("/dashboard/keys")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
