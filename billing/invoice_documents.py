"""What an issued invoice looks like to its reader: the PDF and the email that carries it.

Both are drawn from the stored invoice row only, so they read the same every time.
"""

from pathlib import Path

from django.core.mail import EmailMessage
from django.utils import timezone
from django_countries import countries
from fpdf import FPDF

from billing.models import Invoice, PaymentMethod, VatTreatment
from billing.money import format_eur
from billing.vat import VatDecision


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
    if invoice.replaces is not None:
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
