"""Operator money actions: refunds of top-ups through Stripe, and balance adjustments.

Spend order: promotional credit (activation codes, promo grants, positive adjustments) is
spent first, paid credit last. So the paid credit still unspent is the smaller of what was
paid in (top-ups minus refunds) and the spendable balance, and only that can be refunded:
promotional credit is never turned into money.

An operator's refund takes the credits out of the wallet first and then asks Stripe, with
no row locked while Stripe answers. If Stripe refuses, the credits are put back by a second
ledger entry; if it gives no clear answer (no reply, or its own 5xx), the refund stays pending
and is sent again with the same idempotency key, so it is made at most once.

A top-up can be refunded within LOWROUTER_REFUND_WINDOW_DAYS (14, the EU cooling-off period)
of its payment. A full refund of a whole top-up returns everything paid (fee and VAT
included); a partial refund returns the credits refunded plus their VAT, and the flat fee is
kept until a refund completes the top-up (see ``compute_refund_gross_cents``).
"""

import logging
from datetime import timedelta

import stripe
from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.audit import record_audit
from accounts.models import User
from billing.checkout import TopUpError, get_stripe_client
from billing.ledger import get_wallet, post_entry
from billing.models import (
    LedgerEntry,
    LedgerKind,
    Refund,
    RefundStatus,
    TopUp,
    TopUpStatus,
    Wallet,
)
from billing.money import MICROS_PER_CREDIT
from billing.vat import compute_vat_cents

log = logging.getLogger(__name__)


class RefundError(Exception):
    """A refund the rules (or Stripe) do not allow; the message says which rule."""


class RefundPending(RefundError):
    """Stripe gave no clear answer; the refund stays pending and is sent again."""


# A refund Stripe did not answer is sent again after this long, and only within the lifetime
# of its idempotency key (Stripe keeps keys for 24 hours).
PENDING_RETRY_AFTER = timedelta(minutes=5)
IDEMPOTENCY_KEY_LIFETIME = timedelta(hours=23)


def get_unspent_paid_micros(account_id: int) -> int:
    """Paid credit not yet spent, with promotional credit spent first (see module doc)."""
    paid = LedgerEntry.objects.filter(
        account_id=account_id, kind__in=[LedgerKind.TOPUP, LedgerKind.REFUND]
    ).aggregate(s=Sum("amount_micros"))["s"]
    wallet = get_wallet(account_id)
    spendable = wallet.balance_micros - wallet.reserved_micros
    return max(0, min(int(paid or 0), spendable))


def get_refundable_cents(topup: TopUp) -> int:
    """The most credits (cents) of this top-up an operator may refund now."""
    if topup.status not in (TopUpStatus.PAID, TopUpStatus.REFUNDED) or topup.paid_at is None:
        return 0
    window = timedelta(days=settings.LOWROUTER_REFUND_WINDOW_DAYS)
    if timezone.now() - topup.paid_at > window:
        return 0
    remaining = topup.credits_cents - topup.refunded_credits_cents
    return min(remaining, get_unspent_paid_micros(topup.account_id) // MICROS_PER_CREDIT)


def compute_refund_gross_cents(topup: TopUp, credits_cents: int) -> int:
    """What the buyer gets back for ``credits_cents`` more credits of ``topup``.

    The VAT is that of all the credits refunded so far, minus the VAT already returned: VAT
    rounded per refund would drift (a 1-credit refund returns no VAT at 20%). So the VAT
    returned never exceeds the VAT charged, and the refund that completes the top-up returns
    all that is left (the fee and its VAT too), exactly as one full refund would.
    """
    refunded_credits = topup.refunded_credits_cents + credits_cents
    if refunded_credits >= topup.credits_cents:
        return topup.gross_cents - topup.refunded_gross_cents
    # Before the completing refund no fee is returned, so the rest of the gross is VAT.
    vat_returned = topup.refunded_gross_cents - topup.refunded_credits_cents
    vat_due = compute_vat_cents(refunded_credits, topup.vat_rate) - vat_returned
    return credits_cents + max(0, vat_due)


def refund_topup(*, topup: TopUp, credits_cents: int, actor: User, reason: str) -> Refund:
    """Refund ``credits_cents`` credits of a paid top-up through Stripe and take them out of
    the wallet. Raises RefundError when the rules or Stripe refuse it (nothing is taken out,
    or it is put back), RefundPending when Stripe gave no clear answer.

    Three steps, so no row is locked while Stripe is asked (a slow Stripe must not stall the
    account's requests, which settle against the same wallet row): claim the refund (the
    credits leave the balance and the top-up counts them, so neither a request nor a second
    refund can use them), ask Stripe, then record its answer."""
    try:
        client = get_stripe_client()  # before anything is claimed: no Stripe, no refund
    except TopUpError as exc:
        raise RefundError(str(exc)) from exc
    refund = _claim_refund(topup, credits_cents, actor, reason)
    return send_refund(refund, client)


@transaction.atomic
def _claim_refund(topup: TopUp, credits_cents: int, actor: User, reason: str) -> Refund:
    # The top-up and wallet rows stay locked until commit, so two operators (or a refund and
    # the charge.refunded webhook) cannot both count the same unspent credit.
    topup = TopUp.objects.select_for_update().get(pk=topup.pk)
    Wallet.objects.select_for_update().filter(account_id=topup.account_id).first()
    if credits_cents <= 0:
        raise RefundError("Refund at least one credit.")
    if not topup.stripe_payment_intent_id:
        raise RefundError("This top-up has no Stripe payment to refund.")
    refundable = get_refundable_cents(topup)
    if credits_cents > refundable:
        raise RefundError(
            f"At most {refundable} credits of this top-up are refundable (unspent paid credit, "
            f"within {settings.LOWROUTER_REFUND_WINDOW_DAYS} days of payment)."
        )
    gross_cents = compute_refund_gross_cents(topup, credits_cents)
    entry = post_entry(
        account=topup.account_id,
        kind=LedgerKind.REFUND,
        amount_micros=-credits_cents * MICROS_PER_CREDIT,
        reference=f"topup:{topup.pk}",
        reason=reason,
        actor=actor,
    )
    refund = Refund.objects.create(
        topup=topup,
        credits_cents=credits_cents,
        gross_cents=gross_cents,
        ledger_entry=entry,
        actor=actor,
        reason=reason,
        status=RefundStatus.PENDING,
    )
    _count_refunded(topup, credits_cents, gross_cents)
    return refund


def send_refund(refund: Refund, client: stripe.StripeClient) -> Refund:
    """Ask Stripe for a claimed (pending) refund and record the answer. Safe to repeat: the
    idempotency key is the refund's own id, so Stripe makes it at most once."""
    topup = refund.topup
    try:
        stripe_refund = client.v1.refunds.create(
            params={
                "payment_intent": topup.stripe_payment_intent_id,
                "amount": refund.gross_cents,
                "metadata": {"topup_id": str(topup.pk), "refund_id": str(refund.pk)},
            },
            options={"idempotency_key": f"refund-{refund.pk}"},
        )
    except (stripe.APIConnectionError, stripe.APIError) as exc:
        # No answer, or Stripe's own failure after its retries: the refund may have been made.
        log.warning("refund %s: no clear answer from Stripe (%s); stays pending", refund.pk, exc)
        raise RefundPending(
            "Stripe did not confirm the refund. The credits are taken out and the refund is "
            "pending: it is sent again (and made at most once) until Stripe answers."
        ) from exc
    except stripe.StripeError as exc:
        _undo_refund(refund, str(exc.user_message or exc))
        raise RefundError(f"Stripe refused the refund: {exc.user_message or exc}") from exc
    return _confirm_refund(refund, stripe_refund.id)


@transaction.atomic
def _confirm_refund(refund: Refund, stripe_refund_id: str) -> Refund:
    refund = Refund.objects.select_for_update().get(pk=refund.pk)
    if refund.status == RefundStatus.PENDING:
        refund.status = RefundStatus.SUCCEEDED
        refund.stripe_refund_id = stripe_refund_id
        refund.save(update_fields=["status", "stripe_refund_id"])
        record_audit(
            actor=refund.actor,
            account=refund.topup.account_id,
            action="topup.refund",
            target=f"topup:{refund.topup_id}",
            changes={
                "credits": refund.credits_cents,
                "gross_cents": refund.gross_cents,
                "reason": refund.reason,
            },
        )
    return refund


@transaction.atomic
def _undo_refund(refund: Refund, why: str) -> None:
    """Stripe refused: put the credits back with a second entry (the ledger is append-only)
    and stop counting them as refunded."""
    refund = Refund.objects.select_for_update().get(pk=refund.pk)
    if refund.status != RefundStatus.PENDING:
        return
    topup = TopUp.objects.select_for_update().get(pk=refund.topup_id)
    post_entry(
        account=topup.account_id,
        kind=LedgerKind.REFUND,
        amount_micros=refund.credits_cents * MICROS_PER_CREDIT,
        reference=f"refund:{refund.pk}",
        reason="Refund refused by Stripe; credits put back",
        actor=refund.actor,
    )
    _count_refunded(topup, -refund.credits_cents, -refund.gross_cents)
    refund.status = RefundStatus.FAILED
    refund.save(update_fields=["status"])
    record_audit(
        actor=refund.actor,
        account=topup.account_id,
        action="topup.refund.failed",
        target=f"topup:{topup.pk}",
        changes={"credits": refund.credits_cents, "gross_cents": refund.gross_cents, "why": why},
    )


def retry_pending_refunds(*, older_than: timedelta = PENDING_RETRY_AFTER) -> int:
    """Send again the refunds Stripe gave no clear answer to; returns how many it settled.
    Stripe keeps an idempotency key for 24 hours: past that a resend could refund twice, so
    an older pending refund is left to an operator (checked in the Stripe Dashboard)."""
    now = timezone.now()
    settled = 0
    client = None
    pending = Refund.objects.filter(status=RefundStatus.PENDING, created_at__lt=now - older_than)
    for refund in pending.select_related("topup", "actor").order_by("pk"):
        if refund.created_at < now - IDEMPOTENCY_KEY_LIFETIME:
            log.error("refund %s pending for over a day: check it in Stripe", refund.pk)
            continue
        # Only once there is one to send: a server without Stripe runs this task too.
        client = client or get_stripe_client()
        try:
            send_refund(refund, client)
        except RefundPending:
            continue
        except RefundError:
            pass  # refused: the credits are back
        settled += 1
    return settled


def _count_refunded(topup: TopUp, credits_cents: int, gross_cents: int) -> None:
    """Move what the top-up counts as refunded (negative to undo); it is ``refunded`` once
    every credit is."""
    topup.refunded_credits_cents += credits_cents
    topup.refunded_gross_cents += gross_cents
    if topup.refunded_credits_cents >= topup.credits_cents:
        topup.status = TopUpStatus.REFUNDED
    elif topup.status == TopUpStatus.REFUNDED:
        topup.status = TopUpStatus.PAID
    topup.save(update_fields=["refunded_credits_cents", "refunded_gross_cents", "status"])


@transaction.atomic
def record_external_refund(*, topup: TopUp, amount_refunded_cents: int) -> bool:
    """Apply a refund made outside our admin (Stripe Dashboard), from ``charge.refunded``.

    ``amount_refunded_cents`` is Stripe's running total for the charge; what our own refunds
    already account for is skipped, so redelivery and our own refunds' events are no-ops.
    The credits taken out are capped at the spendable balance: the money is already gone.
    """
    topup = TopUp.objects.select_for_update().get(pk=topup.pk)
    untracked = amount_refunded_cents - topup.refunded_gross_cents
    if untracked <= 0:
        return False
    remaining = topup.credits_cents - topup.refunded_credits_cents
    if amount_refunded_cents >= topup.gross_cents:
        credits_cents = remaining
    else:  # the credits whose price plus VAT makes up the refunded amount
        credits_cents = min(remaining, int(untracked * 100 / (100 + topup.vat_rate)))
    wallet = Wallet.objects.select_for_update().get(account_id=topup.account_id)
    debit = min(credits_cents * MICROS_PER_CREDIT, wallet.balance_micros - wallet.reserved_micros)
    if debit > 0:
        entry = post_entry(
            account=topup.account_id,
            kind=LedgerKind.REFUND,
            amount_micros=-debit,
            reference=f"topup:{topup.pk}",
            reason="Refund made in Stripe",
        )
        Refund.objects.create(
            topup=topup,
            credits_cents=credits_cents,
            gross_cents=untracked,
            ledger_entry=entry,
            reason="Refund made in Stripe",
        )
    _count_refunded(topup, credits_cents, untracked)
    record_audit(
        actor=None,
        account=topup.account_id,
        action="topup.refund.external",
        target=f"topup:{topup.pk}",
        changes={"gross_cents": untracked, "credits": credits_cents, "debited_micros": debit},
    )
    return True


@transaction.atomic
def adjust_balance(
    *,
    account: User | int,
    amount_micros: int,
    reason: str,
    actor: User,
    kind: LedgerKind = LedgerKind.ADJUSTMENT,
) -> LedgerEntry:
    """An operator's correction (or promotional grant) with its reason, audited."""
    if kind not in (LedgerKind.ADJUSTMENT, LedgerKind.PROMO_GRANT):
        raise ValueError(f"Operators adjust with adjustment or promo_grant, not {kind}.")
    if not reason.strip():
        raise ValueError("An adjustment needs a reason.")
    if kind == LedgerKind.PROMO_GRANT and amount_micros <= 0:
        raise ValueError("A promotional grant adds credit.")
    entry = post_entry(
        account=account, kind=kind, amount_micros=amount_micros, reason=reason, actor=actor
    )
    record_audit(
        actor=actor,
        account=entry.account_id,
        action=f"ledger.{kind}",
        target=f"ledger:{entry.pk}",
        changes={"amount_micros": amount_micros, "reason": reason},
    )
    return entry
