from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import User
from billing.checkout import TopUpError, quote_topup, start_checkout
from billing.models import TopUp, TopUpStatus, VatTreatment
from tests.billing.payments_helpers import FakeStripe, FakeVies
from tests.factories import BuyerFactory

pytestmark = pytest.mark.django_db


def test_quote_adds_the_fee_then_vat_on_top(settings: object, buyer: User) -> None:
    settings.LOWROUTER_TOPUP_FEE_EUR = Decimal("0.80")
    quote = quote_topup(account=buyer, credits_eur=Decimal("20"))
    assert (quote.credits_cents, quote.fee_cents, quote.net_cents) == (2000, 80, 2080)
    assert (quote.vat_rate, quote.vat_cents, quote.gross_cents) == (Decimal("20"), 416, 2496)


def test_reverse_charged_business_pays_no_vat(fake_vies: FakeVies) -> None:
    fake_vies.valid = {"DE136695976"}
    user = BuyerFactory(country="DE", vat_number="DE136695976")
    quote = quote_topup(account=user, credits_eur=Decimal("10"))
    assert quote.vat.treatment == VatTreatment.REVERSE_CHARGE
    assert quote.vat_cents == 0
    assert quote.gross_cents == quote.net_cents


@pytest.mark.parametrize("amount", ["4.99", "1000.01", "10.001", "NaN"])
def test_amount_outside_bounds_is_refused(buyer: User, amount: str) -> None:
    with pytest.raises(TopUpError):
        quote_topup(account=buyer, credits_eur=Decimal(amount))


def test_unverified_account_cannot_top_up(fake_stripe: FakeStripe) -> None:
    user = BuyerFactory(email="new@example.com", verified=False)
    with pytest.raises(TopUpError, match="Verify"):
        start_checkout(account=user, credits_eur=Decimal("10"), success_url="s", cancel_url="c")
    assert fake_stripe.requests == []


def test_checkout_session_is_created_in_eur_with_card_and_sepa(
    fake_stripe: FakeStripe, buyer: User
) -> None:
    topup, url = start_checkout(
        account=buyer, credits_eur=Decimal("20"), success_url="https://x/ok", cancel_url="c"
    )
    assert url.startswith("https://checkout.stripe.test/")
    (req,) = fake_stripe.requests
    form = req["form"]
    assert req["path"] == "/v1/checkout/sessions"
    assert req["headers"]["Idempotency-Key"] == f"topup-{topup.pk}"
    assert form["mode"] == "payment"
    assert (form["payment_method_types[0]"], form["payment_method_types[1]"]) == (
        "card",
        "sepa_debit",
    )
    amounts = [int(form[f"line_items[{i}][price_data][unit_amount]"]) for i in range(3)]
    assert amounts == [2000, 80, 416]
    assert {form[f"line_items[{i}][price_data][currency]"] for i in range(3)} == {"eur"}
    assert form["metadata[topup_id]"] == str(topup.pk)
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PENDING
    assert topup.stripe_session_id == url.rsplit("/", 1)[1]
    assert topup.gross_cents == 2496


def test_stripe_failure_marks_the_topup_failed(fake_stripe: FakeStripe, buyer: User) -> None:
    fake_stripe.fail_next = 400
    with pytest.raises(TopUpError):
        start_checkout(account=buyer, credits_eur=Decimal("20"), success_url="s", cancel_url="c")
    assert TopUp.objects.get().status == TopUpStatus.FAILED


def test_topup_page_shows_the_all_in_price_then_redirects_to_stripe(
    fake_stripe: FakeStripe, buyer: User
) -> None:
    client = Client()
    client.force_login(buyer)
    assert client.get("/billing/topup").status_code == 200
    confirm = client.post("/billing/topup", {"amount": "20"})
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "EUR 24.96" in page and "EUR 0.80" in page and "VAT 20" in page
    go = client.post("/billing/topup/confirm", {"amount": "20"})
    assert go.status_code == 302
    assert go["Location"].startswith("https://checkout.stripe.test/")


def test_topup_page_explains_a_bad_amount(buyer: User) -> None:
    client = Client()
    client.force_login(buyer)
    response = client.post("/billing/topup", {"amount": "abc"})
    assert response.status_code == 400
    assert "Enter an amount" in response.content.decode()


def test_topup_page_needs_login() -> None:
    assert Client().get("/billing/topup").status_code == 302
