"""Celery tasks of the money-in side: thin wrappers that load by id and call a function."""

from celery import shared_task

from billing import notifications, refunds, spending
from billing.invoice_documents import email_invoice
from billing.models import Invoice


@shared_task
def send_invoice_email(invoice_id: int) -> None:
    email_invoice(Invoice.objects.select_related("account", "replaces").get(pk=invoice_id))


@shared_task(name="billing.release_orphaned_holds")
def release_orphaned_holds() -> int:
    """Give back credit held by requests whose process died before settling."""
    return spending.release_orphaned_holds()


@shared_task(name="billing.retry_pending_refunds")
def retry_pending_refunds() -> int:
    """Send again the refunds Stripe gave no clear answer to (same idempotency key)."""
    return refunds.retry_pending_refunds()


@shared_task(name="billing.send_low_balance_alerts")
def send_low_balance_alerts() -> int:
    """Email the accounts whose balance fell below their alert threshold (once per crossing)."""
    return notifications.send_low_balance_alerts()


@shared_task(name="billing.send_monthly_summaries")
def send_monthly_summaries() -> int:
    """Last month's totals to each account that used the gateway (once per month)."""
    return notifications.send_monthly_summaries()
