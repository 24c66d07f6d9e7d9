from typing import Any

import pytest
from django.test import Client
from payments_helpers import FakeStripe, make_buyer, pay_topup

from accounts.audit import AuditEntry
from accounts.models import User
from billing.invoices import reissue_invoice, render_invoice_pdf
from billing.models import Invoice

pytestmark = pytest.mark.django_db


def test_invoices_are_numbered_in_sequence_without_gaps(
    fake_stripe: FakeStripe, buyer: User
) -> None:
    for n in range(3):
        pay_topup(buyer, "10", n)
    numbers = list(Invoice.objects.order_by("id").values_list("number", flat=True))
    assert numbers == ["LR-000001", "LR-000002", "LR-000003"]


def test_invoice_pdf_holds_the_totals(fake_stripe: FakeStripe, buyer: User) -> None:
    pay_topup(buyer, "20", 1)
    invoice = Invoice.objects.get()
    assert (invoice.net_cents, invoice.vat_cents, invoice.gross_cents) == (2080, 416, 2496)
    assert invoice.seller["legal_name"] == "Carbonifer SAS"
    assert invoice.buyer["address"] == "1 rue de Test"
    assert render_invoice_pdf(invoice).startswith(b"%PDF")


def test_reverse_charge_invoice_says_so(fake_stripe: FakeStripe, settings: Any) -> None:
    settings.LOWROUTER_VIES_CHECKER = "payments_helpers.AlwaysValidVies"
    user = make_buyer("b2b@example.com", country="DE", vat_number="DE136695976")
    pay_topup(user, "10", 1)
    invoice = Invoice.objects.get()
    assert invoice.reverse_charge and invoice.vat_cents == 0
    assert invoice.buyer["vat_number"] == "DE136695976"
    assert render_invoice_pdf(invoice).startswith(b"%PDF")


def test_reissue_keeps_the_original_and_links_it(fake_stripe: FakeStripe, buyer: User) -> None:
    pay_topup(buyer, "10", 1)
    original = Invoice.objects.get()
    operator = User.objects.create_user("op@example.com", is_staff=True)
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
    pay_topup(buyer, "10", 1)
    number = Invoice.objects.get().number
    owner = Client()
    owner.force_login(buyer)
    response = owner.get(f"/billing/invoices/{number}.pdf")
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    assert number in owner.get("/billing/invoices").content.decode()
    stranger = Client()
    stranger.force_login(make_buyer("other@example.com"))
    assert stranger.get(f"/billing/invoices/{number}.pdf").status_code == 404
