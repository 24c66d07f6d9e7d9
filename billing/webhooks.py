"""Stripe webhook events: record each once, dispatch by type, apply each effect exactly once.

Stripe delivers at least once and in any order, so every handler re-reads the top-up under a
row lock and does nothing when its effect is already applied.
"""

import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.invoices import issue_invoice
from billing.ledger import post_entry
from billing.models import (
    LedgerKind,
    PaymentMethod,
    StripeEvent,
    StripeEventStatus,
    TopUp,
    TopUpStatus,
)
from billing.money import MICROS_PER_CREDIT
from billing.refunds import record_external_refund

logger = logging.getLogger(__name__)


class BadSignature(Exception):
    pass


class WebhookNotConfigured(Exception):
    """No signing secret: no event can be told from a forgery, so none is read."""


def verify_event(*, payload: bytes, signature: str) -> dict[str, Any]:
    """The event, if ``signature`` signs these exact bytes with our secret and is fresh."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        # Anyone can compute an HMAC with the empty key: checking against it would accept
        # forged events (a pending top-up marked paid without payment).
        raise WebhookNotConfigured("STRIPE_WEBHOOK_SECRET is not set.")
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), signature, secret, tolerance=300
        )
        # The signed bytes as plain JSON (a StripeObject's to_dict() is deprecated).
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise BadSignature(str(exc)) from exc
    if not isinstance(event, dict):
        raise BadSignature("The event is not a JSON object.")
    return event


def _lock_topup(session: dict[str, Any]) -> TopUp | None:
    topups = TopUp.objects.select_for_update()
    topup = topups.filter(stripe_session_id=session["id"]).first()
    if topup is None and (session.get("metadata") or {}).get("topup_id"):
        # The session id is saved after Stripe answers; an event can beat that save.
        topup = topups.filter(pk=session["metadata"]["topup_id"]).first()
    return topup


def fulfil_topup(session: dict[str, Any], *, method: PaymentMethod) -> bool:
    """Credit a paid session's top-up once. Returns whether this call credited it.

    ``method`` is what the invoice prints as the payment method (see ``HANDLERS``).

    Race defended: the same event delivered twice in parallel, or ``completed`` and
    ``async_payment_succeeded`` for one SEPA payment arriving together. The top-up row lock
    serialises them; the conditional UPDATE (status still pending or failed) lets exactly one
    through; the loser sees the new state and does nothing.
    """
    if session.get("payment_status") != "paid":
        return False  # SEPA: completed arrives unpaid; async_payment_succeeded follows.
    with transaction.atomic():
        topup = _lock_topup(session)
        if topup is None:
            logger.warning("paid session %s matches no top-up", session["id"])
            return False
        claimed = TopUp.objects.filter(
            pk=topup.pk, status__in=[TopUpStatus.PENDING, TopUpStatus.FAILED]
        ).update(
            status=TopUpStatus.PAID,
            paid_at=timezone.now(),
            stripe_session_id=session["id"],
            stripe_payment_intent_id=session.get("payment_intent") or "",
            payment_method=method,
        )
        if claimed != 1:
            return False
        entry = post_entry(
            account=topup.account_id,
            kind=LedgerKind.TOPUP,
            amount_micros=topup.credits_cents * MICROS_PER_CREDIT,
            reference=f"topup:{topup.pk}",
        )
        TopUp.objects.filter(pk=topup.pk).update(ledger_entry=entry)
        topup.refresh_from_db()
        issue_invoice(topup=topup)
    return True


def fail_topup(session: dict[str, Any]) -> bool:
    with transaction.atomic():
        topup = _lock_topup(session)
        if topup is None:
            return False
        return (
            TopUp.objects.filter(pk=topup.pk, status=TopUpStatus.PENDING).update(
                status=TopUpStatus.FAILED
            )
            == 1
        )


def handle_charge_refunded(charge: dict[str, Any]) -> bool:
    """Reconcile a refund made outside our admin (e.g. in the Stripe Dashboard)."""
    payment_intent = charge.get("payment_intent") or ""
    topup = TopUp.objects.filter(stripe_payment_intent_id=payment_intent).first()
    if topup is None or not payment_intent:
        return False
    return record_external_refund(topup=topup, amount_refunded_cents=charge["amount_refunded"])


HANDLERS: dict[str, Callable[[dict[str, Any]], bool]] = {
    # The checkout offers card and SEPA Direct Debit only. A card is paid by the time the session
    # completes; SEPA Direct Debit is Stripe's delayed method, whose session completes unpaid
    # and is paid only by async_payment_succeeded. So the event that pays tells the method.
    "checkout.session.completed": partial(fulfil_topup, method=PaymentMethod.CARD),
    "checkout.session.async_payment_succeeded": partial(
        fulfil_topup, method=PaymentMethod.SEPA_DEBIT
    ),
    "checkout.session.async_payment_failed": fail_topup,
    "checkout.session.expired": fail_topup,
    "charge.refunded": handle_charge_refunded,
}


def record_event(event: dict[str, Any]) -> StripeEvent:
    """Store the event once by its id; a duplicate delivery gets the stored row back."""
    try:
        with transaction.atomic():
            return StripeEvent.objects.create(
                event_id=event["id"], type=event["type"], payload=event
            )
    except IntegrityError:
        return StripeEvent.objects.get(event_id=event["id"])


def process_event(event: dict[str, Any]) -> StripeEvent:
    stored = record_event(event)
    if stored.status in (StripeEventStatus.PROCESSED, StripeEventStatus.IGNORED):
        return stored
    handler = HANDLERS.get(event["type"])
    if handler is None:
        status, error = StripeEventStatus.IGNORED, ""
    else:
        try:
            handler(event["data"]["object"])
            status, error = StripeEventStatus.PROCESSED, ""
        except Exception as exc:
            # Stored as failed and answered 500, so Stripe retries the delivery.
            logger.exception("stripe event %s failed", event["id"])
            status, error = StripeEventStatus.FAILED, repr(exc)
    StripeEvent.objects.filter(pk=stored.pk).update(
        status=status, error=error, handled_at=timezone.now()
    )
    stored.status, stored.error = status, error
    return stored
