"""The invoice PDF carries every detail an EU invoice needs, in the buyer's own script.

The text is read back out of the PDF (pypdf), so what is checked is what a reader sees."""

import io
import re
from typing import Any

import pytest
from pypdf import PdfReader

from billing.invoice_documents import render_invoice_pdf
from billing.models import Invoice
from tests.billing.payments_helpers import FakeStripe, FakeVies, pay_topup
from tests.factories import BuyerFactory

pytestmark = pytest.mark.django_db

SELLER = {
    "legal_name": "Carbonifer SAS",
    "address": "12 rue de la Paix, 75002 Paris",
    "country": "FR",
    "vat_number": "FR40303265045",
    "registration": "SAS, RCS Paris 303 265 045",
    "support_email": "billing@lowrouter.example",
    "representative": "",
    "host": "",
}


@pytest.fixture(autouse=True)
def seller(settings: Any) -> None:
    settings.LOWROUTER_SELLER = SELLER


def pdf_text(invoice: Invoice) -> str:
    reader = PdfReader(io.BytesIO(render_invoice_pdf(invoice)))
    # One space for any run of whitespace, so a check does not depend on line breaks.
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


def test_buyer_names_outside_latin1_print_as_entered(fake_stripe: FakeStripe) -> None:
    for n, name in enumerate(["Łódź Software sp. z o.o.", "Dvořák s.r.o.", "Ελληνική ΑΕ"]):
        user = BuyerFactory(email=f"b{n}@example.com", country="FR", legal_name=name)
        pay_topup(user, "10", n)
        text = pdf_text(Invoice.objects.get(account=user))
        assert name in text
        assert "?" not in text


def test_domestic_invoice_carries_every_mandatory_field(fake_stripe: FakeStripe) -> None:
    user = BuyerFactory(email="fr@example.com", country="FR", legal_name="Dupont SARL")
    topup = pay_topup(user, "20", 7)
    invoice = Invoice.objects.get()
    text = pdf_text(invoice)
    for expected in [
        "Invoice LR-000001",
        "Carbonifer SAS",
        "12 rue de la Paix, 75002 Paris",
        "VAT number: FR40303265045",
        "SAS, RCS Paris 303 265 045",
        "billing@lowrouter.example",
        "Dupont SARL",
        "1 rue de Test",
        "France",
        f"Issue date {invoice.issued_at:%Y-%m-%d}",
        f"Date of supply {topup.paid_at:%Y-%m-%d}",
        f"Paid on {topup.paid_at:%Y-%m-%d}",
        "Payment method Card (through Stripe)",
        "Stripe reference pi_7",
        "Net amount at VAT rate 20% EUR 20.80",
        "VAT at 20% EUR 4.16",
        "Total paid EUR 24.96",
    ]:
        assert expected in text
    assert "Reverse charge" not in text and "outside the EU" not in text


def test_eu_consumer_invoice_charges_the_buyer_country_rate(fake_stripe: FakeStripe) -> None:
    user = BuyerFactory(email="de@example.com", country="DE", legal_name="Dvořák Jan")
    pay_topup(user, "10", 1)
    text = pdf_text(Invoice.objects.get())
    assert "Germany" in text
    assert "Net amount at VAT rate 19% EUR 10.80" in text
    assert "VAT at 19% EUR 2.05" in text
    assert "Total paid EUR 12.85" in text


def test_reverse_charge_invoice_names_the_buyer_vat_number_and_the_rule(
    fake_stripe: FakeStripe, fake_vies: FakeVies
) -> None:
    fake_vies.valid = {"PL5260250274"}
    user = BuyerFactory(
        email="pl@example.com",
        country="PL",
        vat_number="PL5260250274",
        legal_name="Łódź Software sp. z o.o.",
    )
    pay_topup(user, "10", 1)
    text = pdf_text(Invoice.objects.get())
    assert "Łódź Software sp. z o.o." in text
    assert "VAT number: PL5260250274" in text
    assert "VAT at 0% EUR 0.00" in text
    assert "Total paid EUR 10.80" in text
    assert "Reverse charge: VAT due by the customer (Art. 196 Directive 2006/112/EC)." in text


def test_invoice_outside_the_eu_says_vat_does_not_apply(fake_stripe: FakeStripe) -> None:
    user = BuyerFactory(email="us@example.com", country="US", legal_name="Acme Inc.")
    pay_topup(user, "10", 1)
    text = pdf_text(Invoice.objects.get())
    assert "United States of America" in text
    assert "VAT at 0% EUR 0.00" in text
    assert "supplied outside the EU (Art. 59 Directive 2006/112/EC)" in text


def test_sepa_payment_is_named_on_the_invoice(fake_stripe: FakeStripe) -> None:
    user = BuyerFactory(email="sepa@example.com", country="FR")
    pay_topup(user, "10", 3, sepa=True)
    text = pdf_text(Invoice.objects.get())
    assert "Payment method SEPA Direct Debit (through Stripe)" in text
    assert "Stripe reference pi_3" in text
