"""Hostile values typed into the money pages are form errors, never an HTTP 500; a NUL in an
invoice number is a 404 (PostgreSQL refuses NUL in a query, SQLite does not)."""

from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import User
from billing.checkout import TopUpError, quote_topup
from billing.models import TopUp
from billing.money import parse_eur
from tests.billing.payments_helpers import FakeStripe

pytestmark = pytest.mark.django_db

HOSTILE_AMOUNTS = [
    "1e999999",
    "-1e999999",
    "1e-999999",
    pytest.param("9" * 400, id="400-nines"),
    "NaN",
    "sNaN",
    "Infinity",
    "-inf",
    "20\x00",
    "\x00",
    "20\ufffd",
    "",
]


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("amount", HOSTILE_AMOUNTS)
def test_a_hostile_amount_on_the_topup_page_is_a_form_error(buyer: User, amount: str) -> None:
    response = logged_in(buyer).post("/billing/topup", {"amount": amount})
    assert response.status_code == 400
    assert 'class="error" role="alert"' in response.content.decode()


@pytest.mark.parametrize("amount", HOSTILE_AMOUNTS)
def test_a_hostile_amount_on_the_confirm_step_is_a_form_error_and_starts_nothing(
    fake_stripe: FakeStripe, buyer: User, amount: str
) -> None:
    response = logged_in(buyer).post("/billing/topup/confirm", {"amount": amount})
    assert response.status_code == 400
    assert 'class="error" role="alert"' in response.content.decode()
    assert fake_stripe.requests == []
    assert not TopUp.objects.exists()


@pytest.mark.parametrize("amount", ["1e999999", "-1e999999", "1e-999999", "Infinity", "NaN"])
def test_quoting_an_extreme_decimal_is_refused_not_raised(buyer: User, amount: str) -> None:
    with pytest.raises(TopUpError):
        quote_topup(account=buyer, credits_eur=Decimal(amount))


@pytest.mark.parametrize("text", ["20", " 12.50 ", "12,5", "1000"])
def test_amounts_people_type_still_parse(text: str) -> None:
    assert parse_eur(text) == Decimal(text.strip().replace(",", "."))


@pytest.mark.parametrize("number", ["LR-000001%00", "%00", "LR-%00-000001"])
def test_a_nul_in_an_invoice_number_is_a_404(buyer: User, number: str) -> None:
    response = logged_in(buyer).get(f"/billing/invoices/{number}.pdf")
    assert response.status_code == 404
