"""Invoices: one per paid top-up, numbered without gaps, immutable once issued.

A correction (new billing details) is a new invoice with its own number that ``replaces`` the
original; the original stays as it was issued.
"""

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from fpdf import FPDF

from accounts.audit import record_audit
from accounts.models import User
from billing.models import Invoice, InvoiceCounter, TopUp, VatTreatment
from billing.money import format_eur
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


def get_vat_mention(invoice: Invoice) -> str:
    decision = VatDecision(VatTreatment(invoice.vat_treatment), invoice.vat_rate, "")
    return decision.mention


def _pdf_text(text: str) -> str:
    # The built-in PDF fonts cover Latin-1 only; other characters print as "?" rather than
    # failing the invoice (the stored invoice keeps the exact text).
    return text.encode("latin-1", "replace").decode("latin-1")


def _block(pdf: FPDF, title: str, party: dict[str, str]) -> None:
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 5, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    rows = [party.get("legal_name", ""), party.get("address", ""), party.get("country", "")]
    if party.get("vat_number"):
        rows.append(f"VAT number: {party['vat_number']}")
    if party.get("email"):
        rows.append(party["email"])
    text = _pdf_text("\n".join(r for r in rows if r))
    pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def render_invoice_pdf(invoice: Invoice) -> bytes:
    """The PDF, drawn from the stored invoice row only, so it reads the same every time."""
    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, f"Invoice {invoice.number}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    pdf.cell(0, 5, f"Issued {invoice.issued_at:%Y-%m-%d} (UTC)", new_x="LMARGIN", new_y="NEXT")
    if invoice.replaces_id:
        pdf.cell(0, 5, f"Replaces invoice {invoice.replaces.number}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    _block(pdf, "Seller", invoice.seller)
    _block(pdf, "Buyer", invoice.buyer)
    for line in invoice.lines:
        pdf.cell(140, 6, _pdf_text(line["description"]))
        pdf.cell(0, 6, format_eur(line["amount_cents"]), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    totals = [
        ("Net", invoice.net_cents),
        (f"VAT {invoice.vat_rate}%", invoice.vat_cents),
        ("Total", invoice.gross_cents),
    ]
    pdf.set_font("Helvetica", "B", 10)
    for label, cents in totals:
        pdf.cell(140, 6, label)
        pdf.cell(0, 6, format_eur(cents), align="R", new_x="LMARGIN", new_y="NEXT")
    mention = get_vat_mention(invoice)
    if mention:
        pdf.ln(4)
        pdf.set_font("Helvetica", size=9)
        pdf.multi_cell(0, 5, mention, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def mark_emailed(invoice_id: int) -> None:
    Invoice.objects.filter(pk=invoice_id, emailed_at__isnull=True).update(emailed_at=timezone.now())
