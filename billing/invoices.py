"""Invoices: one per paid top-up, numbered without gaps, immutable once issued.

A correction (new billing details) is a new invoice with its own number that ``replaces`` the
original; the original stays as it was issued.
"""

from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.audit import record_audit
from accounts.models import Preferences, User
from billing.models import Invoice, InvoiceCounter, TopUp
from billing.tasks import send_invoice_email

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
    """Email the invoice after the commit, unless the customer turned invoice emails off (the
    invoice stays on the credits page either way)."""
    if not Preferences.of(invoice.account_id).invoice_emails:
        return
    invoice_id = invoice.pk
    transaction.on_commit(lambda: send_invoice_email.delay(invoice_id))
