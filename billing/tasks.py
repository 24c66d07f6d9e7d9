"""Celery tasks of the money-in side: thin wrappers that load by id and call a function."""

from celery import shared_task
from django.core.mail import EmailMessage

from billing.invoices import format_eur, mark_emailed, render_invoice_pdf
from billing.models import Invoice


@shared_task
def send_invoice_email(invoice_id: int) -> None:
    invoice = Invoice.objects.select_related("account", "replaces").get(pk=invoice_id)
    body = (
        f"Thank you for your top-up. Invoice {invoice.number} for {format_eur(invoice.gross_cents)}"
        " is attached."
    )
    if invoice.replaces_id:
        body += f" It replaces invoice {invoice.replaces.number}."
    message = EmailMessage(
        subject=f"LowRouter invoice {invoice.number}", body=body, to=[invoice.account.email]
    )
    message.attach(f"{invoice.number}.pdf", render_invoice_pdf(invoice), "application/pdf")
    message.send()
    mark_emailed(invoice.pk)


@shared_task(name="billing.release_orphaned_holds")
def release_orphaned_holds() -> int:
    """Give back credit held by requests whose process died before settling."""
    from billing.spending import release_orphaned_holds as release

    return release()


@shared_task(name="billing.retry_pending_refunds")
def retry_pending_refunds() -> int:
    """Send again the refunds Stripe gave no clear answer to (same idempotency key)."""
    from billing.refunds import retry_pending_refunds as retry

    return retry()


@shared_task(name="billing.send_low_balance_alerts")
def send_low_balance_alerts() -> int:
    """Email the accounts whose balance fell below their alert threshold (once per crossing)."""
    from billing.notifications import send_low_balance_alerts as send

    return send()
