"""Invoices: one per paid top-up, numbered without gaps, immutable once issued.

A correction (new billing details) is a new invoice with its own number that ``replaces`` the
original; the original stays as it was issued.
"""

from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_countries import countries
from fpdf import FPDF

from accounts.audit import record_audit
from accounts.models import User
from billing.models import Invoice, InvoiceCounter, PaymentMethod, TopUp, VatTreatment
from billing.vat import VatDecision

SERIES = "LR"


def allocate_invoice_number(series: str = SERIES) -> str:
    """Take the next number of the series. Must run inside the transaction that saves the
    invoice: the counter row stays locked until commit, so two issuers queue here and a
    rollback gives the number back (no gaps, no duplicates)."""
    assert transaction.get_connection().in_atomic_block, "allocate inside the issuing transaction"
    InvoiceCounter.objects.get_or_create(series=series)
    counter = InvoiceCounter.objects.select_for_update().get(series=series)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return f"{series}-{counter.last_number:06d}"


def _lines(topup: TopUp) -> list[dict[str, Any]]:
    return [
        {
            "description": f"Prepaid credits ({topup.credits_cents})",
            "amount_cents": topup.credits_cents,
        },
        {"description": "Payment and platform fee", "amount_cents": topup.fee_cents},
    ]


@transaction.atomic
def issue_invoice(*, topup: TopUp) -> Invoice:
    """The original invoice of a paid top-up; returns the existing one when already issued."""
    existing = Invoice.objects.filter(topup=topup, replaces__isnull=True).first()
    if existing:
        return existing
    invoice = Invoice.objects.create(
        number=allocate_invoice_number(),
        account_id=topup.account_id,
        topup=topup,
        seller=dict(settings.LOWROUTER_SELLER),
        buyer=topup.buyer,
        lines=_lines(topup),
        net_cents=topup.net_cents,
        vat_rate=topup.vat_rate,
        vat_cents=topup.vat_cents,
        gross_cents=topup.gross_cents,
        vat_treatment=topup.vat_treatment,
    )
    enqueue_invoice_email(invoice)
    return invoice


@transaction.atomic
def reissue_invoice(*, invoice: Invoice, buyer: dict[str, str], actor: User | None) -> Invoice:
    """A corrected copy with new buyer details and a new number. The amounts are what was
    paid and stay as they are; the original is kept and linked through ``replaces``."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if Invoice.objects.filter(replaces=invoice).exists():
        raise ValueError(f"{invoice.number} was already replaced; re-issue the latest one.")
    corrected = Invoice.objects.create(
        number=allocate_invoice_number(),
        account_id=invoice.account_id,
        topup_id=invoice.topup_id,
        replaces=invoice,
        seller=invoice.seller,
        buyer={**invoice.buyer, **buyer},
        lines=invoice.lines,
        net_cents=invoice.net_cents,
        vat_rate=invoice.vat_rate,
        vat_cents=invoice.vat_cents,
        gross_cents=invoice.gross_cents,
        vat_treatment=invoice.vat_treatment,
    )
    record_audit(
        actor=actor,
        account=invoice.account_id,
        action="invoice.reissue",
        target=f"invoice:{invoice.number}",
        changes={"replaced_by": corrected.number, "buyer": [invoice.buyer, corrected.buyer]},
    )
    enqueue_invoice_email(corrected)
    return corrected


def enqueue_invoice_email(invoice: Invoice) -> None:
    from billing.tasks import send_invoice_email  # the task module imports this one

    invoice_id = invoice.pk
    transaction.on_commit(lambda: send_invoice_email.delay(invoice_id))


def format_eur(cents: int) -> str:
    return f"EUR {Decimal(cents) / 100:.2f}"


def get_vat_mention(invoice: Invoice) -> str:
    decision = VatDecision(VatTreatment(invoice.vat_treatment), invoice.vat_rate, "")
    return decision.mention


# DejaVu Sans covers Latin (all EU languages), Greek and Cyrillic, so a buyer's name prints as
# it was entered; the files ship in the repository (billing/fonts/LICENSE) and are embedded,
# subset, in every PDF.
FONT_DIR = Path(__file__).resolve().parent / "fonts"
FONT = "DejaVuSans"


def _party_rows(party: dict[str, str]) -> list[str]:
    country = party.get("country", "")
    rows = [
        party.get("legal_name", "") or party.get("email", ""),
        party.get("address", ""),
        str(countries.name(country)) or country if country else "",
    ]
    if party.get("vat_number"):
        rows.append(f"VAT number: {party['vat_number']}")
    if party.get("registration"):
        rows.append(party["registration"])
    if party.get("support_email"):
        rows.append(party["support_email"])
    elif party.get("email") and party.get("legal_name"):
        rows.append(party["email"])
    return [r for r in rows if r]


def _payment_rows(invoice: Invoice) -> list[tuple[str, str]]:
    topup = invoice.topup
    paid = topup.paid_at or invoice.issued_at
    method = PaymentMethod(topup.payment_method).label if topup.payment_method else "Stripe"
    reference = topup.stripe_payment_intent_id or topup.stripe_session_id or ""
    rows = [
        ("Invoice number", invoice.number),
        ("Issue date", f"{invoice.issued_at:%Y-%m-%d}"),
        # The credits are delivered the moment the payment is confirmed.
        ("Date of supply", f"{paid:%Y-%m-%d}"),
        ("Paid on", f"{paid:%Y-%m-%d}"),
        ("Payment method", f"{method} (through Stripe)" if topup.payment_method else method),
    ]
    if reference:
        rows.append(("Stripe reference", reference))
    if invoice.replaces_id:
        rows.append(("Replaces invoice", invoice.replaces.number))
    return rows


def _block(pdf: FPDF, title: str, party: dict[str, str]) -> None:
    pdf.set_font(FONT, "B", 10)
    pdf.cell(0, 5, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=10)
    pdf.multi_cell(0, 5, "\n".join(_party_rows(party)), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _row(pdf: FPDF, label: str, value: str, *, width: float = 140) -> None:
    pdf.cell(width, 6, label)
    pdf.cell(0, 6, value, align="R", new_x="LMARGIN", new_y="NEXT")


def render_invoice_pdf(invoice: Invoice) -> bytes:
    """The PDF, drawn from the stored invoice and its paid top-up only, so it reads the same
    every time. Carries every field an EU invoice needs (Art. 226 Directive 2006/112/EC)."""
    pdf = FPDF(format="A4")
    pdf.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_title(f"Invoice {invoice.number}")
    pdf.add_page()
    pdf.set_font(FONT, "B", 16)
    pdf.cell(0, 10, f"Invoice {invoice.number}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=10)
    for label, value in _payment_rows(invoice):
        pdf.cell(40, 5, label)
        pdf.cell(0, 5, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    _block(pdf, "Seller", invoice.seller)
    _block(pdf, "Buyer", invoice.buyer)
    pdf.set_font(FONT, "B", 10)
    _row(pdf, "Description", "Net amount")
    pdf.set_font(FONT, size=10)
    for line in invoice.lines:
        _row(pdf, line["description"], format_eur(line["amount_cents"]))
    pdf.ln(2)
    rate = f"{invoice.vat_rate.normalize():f}%"
    _row(pdf, f"Net amount at VAT rate {rate}", format_eur(invoice.net_cents))
    _row(pdf, f"VAT at {rate}", format_eur(invoice.vat_cents))
    pdf.set_font(FONT, "B", 10)
    _row(pdf, "Total paid", format_eur(invoice.gross_cents))
    mention = get_vat_mention(invoice)
    if mention:
        pdf.ln(4)
        pdf.set_font(FONT, size=9)
        pdf.multi_cell(0, 5, mention, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def mark_emailed(invoice_id: int) -> None:
    Invoice.objects.filter(pk=invoice_id, emailed_at__isnull=True).update(emailed_at=timezone.now())
