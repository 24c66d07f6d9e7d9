"""What an issued invoice looks like to its reader: the PDF and the email that carries it.

Both are drawn from the stored invoice row only, so they read the same every time.
"""

from django.core.mail import EmailMessage
from django.utils import timezone
from fpdf import FPDF

from billing.models import Invoice, VatTreatment
from billing.money import format_eur
from billing.vat import VatDecision


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
    if invoice.replaces is not None:
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


def email_invoice(invoice: Invoice) -> None:
    """Send the invoice to the account's email address with its PDF attached, once."""
    body = (
        f"Thank you for your top-up. Invoice {invoice.number} for {format_eur(invoice.gross_cents)}"
        " is attached."
    )
    if invoice.replaces is not None:
        body += f" It replaces invoice {invoice.replaces.number}."
    message = EmailMessage(
        subject=f"LowRouter invoice {invoice.number}", body=body, to=[invoice.account.email]
    )
    message.attach(f"{invoice.number}.pdf", render_invoice_pdf(invoice), "application/pdf")
    message.send()
    mark_emailed(invoice.pk)
