from decimal import Decimal

import pytest
from django.test import Client

from accounts.audit import AuditEntry
from accounts.models import User
from billing.checkout import start_checkout
from billing.invoice_documents import render_invoice_pdf
from billing.invoices import reissue_invoice
from billing.models import Invoice, TopUp
from tests.billing.payments_helpers import (
    FakeStripe,
    FakeVies,
    post_event,
    session_event,
)
from tests.factories import BuyerFactory

pytestmark = pytest.mark.django_db


def pay(user: User, amount: str, n: int) -> TopUp:
    topup, _ = start_checkout(
        account=user, credits_eur=Decimal(amount), success_url="s", cancel_url="c"
    )
    event = session_event(
        event_id=f"evt_{n}",
        type="checkout.session.completed",
        session_id=topup.stripe_session_id,
        topup_id=topup.pk,
        payment_intent=f"pi_{n}",
    )
    assert post_event(Client(), event).status_code == 200
    return topup


def test_invoices_are_numbered_in_sequence_without_gaps(
    fake_stripe: FakeStripe, buyer: User
) -> None:
    for n in range(3):
        pay(buyer, "10", n)
    numbers = list(Invoice.objects.order_by("id").values_list("number", flat=True))
    assert numbers == ["LR-000001", "LR-000002", "LR-000003"]


def test_invoice_pdf_holds_the_totals(fake_stripe: FakeStripe, buyer: User) -> None:
    pay(buyer, "20", 1)
    invoice = Invoice.objects.get()
    assert (invoice.net_cents, invoice.vat_cents, invoice.gross_cents) == (2080, 416, 2496)
    assert invoice.seller["legal_name"] == "Carbonifer SAS"
    assert invoice.buyer["address"] == "1 rue de Test"
    assert render_invoice_pdf(invoice).startswith(b"%PDF")


def test_reverse_charge_invoice_says_so(fake_stripe: FakeStripe, fake_vies: FakeVies) -> None:
    fake_vies.valid = {"DE136695976"}
    user = BuyerFactory(email="b2b@example.com", country="DE", vat_number="DE136695976")
    pay(user, "10", 1)
    invoice = Invoice.objects.get()
    assert invoice.reverse_charge and invoice.vat_cents == 0
    assert invoice.buyer["vat_number"] == "DE136695976"
    assert render_invoice_pdf(invoice).startswith(b"%PDF")


def test_reissue_keeps_the_original_and_links_it(
    fake_stripe: FakeStripe, buyer: User, operator: User
) -> None:
    pay(buyer, "10", 1)
    original = Invoice.objects.get()
    corrected = reissue_invoice(invoice=original, buyer={"legal_name": "ACME SAS"}, actor=operator)
    original.refresh_from_db()
    assert original.buyer["legal_name"] == ""
    assert corrected.replaces == original and corrected.number == "LR-000002"
    assert corrected.buyer["legal_name"] == "ACME SAS"
    assert corrected.gross_cents == original.gross_cents
    assert AuditEntry.objects.get(action="invoice.reissue").actor == operator
    with pytest.raises(ValueError):
        reissue_invoice(invoice=original, buyer={}, actor=operator)


def test_only_the_owner_can_download_an_invoice(fake_stripe: FakeStripe, buyer: User) -> None:
    pay(buyer, "10", 1)
    invoice = Invoice.objects.get()
    number = invoice.number
    owner = Client()
    owner.force_login(buyer)
    response = owner.get(f"/billing/invoices/{number}.pdf")
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    page = owner.get("/billing/invoices").content.decode()
    assert number in page and invoice.gross_display in page
    stranger = Client()
    stranger.force_login(BuyerFactory(email="other@example.com"))
    assert stranger.get(f"/billing/invoices/{number}.pdf").status_code == 404
    assert number not in stranger.get("/billing/invoices").content.decode()


def test_the_invoice_list_shows_each_invoice_with_its_gross_amount(
    fake_stripe: FakeStripe, buyer: User
) -> None:
    pay(buyer, "10", 1)
    invoice = Invoice.objects.get()
    owner = Client()
    owner.force_login(buyer)
    page = owner.get("/billing/invoices").content.decode()
    assert invoice.number in page
    assert f"EUR {invoice.gross_cents // 100}.{invoice.gross_cents % 100:02d}" in page


def test_pdf_survives_names_outside_latin1(fake_stripe: FakeStripe) -> None:
    user = BuyerFactory(email="pl@example.com", country="PL", legal_name="Łódź Spółka 🚀")
    pay(user, "10", 1)
    assert render_invoice_pdf(Invoice.objects.get()).startswith(b"%PDF")
