import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEntry, User
from billing.checkout import start_checkout
from billing.ledger import get_wallet, ledger_sum, post_entry
from billing.models import LedgerEntry, LedgerKind, Refund, RefundStatus, TopUp, TopUpStatus
from billing.refunds import (
    RefundError,
    RefundPending,
    adjust_balance,
    get_refundable_cents,
    refund_topup,
    retry_pending_refunds,
)
from tests.billing.payments_helpers import FakeStripe, post_event, session_event

pytestmark = pytest.mark.django_db
M = 1_000_000  # micros per credit


@pytest.fixture
def paid(fake_stripe: FakeStripe, buyer: User) -> TopUp:
    topup, _ = start_checkout(
        account=buyer, credits_eur=Decimal("20"), success_url="s", cancel_url="c"
    )
    event = session_event(
        event_id="evt_1",
        type="checkout.session.completed",
        session_id=topup.stripe_session_id,
        topup_id=topup.pk,
    )
    post_event(Client(), event)
    topup.refresh_from_db()
    return topup


def test_full_refund_returns_everything_paid(
    paid: TopUp, operator: User, fake_stripe: FakeStripe
) -> None:
    refund = refund_topup(topup=paid, credits_cents=2000, actor=operator, reason="accident")
    assert refund.gross_cents == 2496
    assert refund.status == RefundStatus.SUCCEEDED and refund.stripe_refund_id.startswith("re_")
    req = fake_stripe.requests[-1]
    assert req["path"] == "/v1/refunds"
    assert req["form"] == {
        "payment_intent": "pi_test_1",
        "amount": "2496",
        "metadata[topup_id]": str(paid.pk),
        "metadata[refund_id]": str(refund.pk),
    }
    assert req["headers"]["Idempotency-Key"] == f"refund-{refund.pk}"
    paid.refresh_from_db()
    assert paid.status == TopUpStatus.REFUNDED
    assert get_wallet(paid.account_id).balance_micros == 0 == ledger_sum(paid.account_id)
    audit = AuditEntry.objects.get(action="topup.refund")
    assert audit.actor == operator and audit.changes["gross_cents"] == 2496


def test_partial_refund_returns_credits_plus_their_vat(paid: TopUp, operator: User) -> None:
    refund = refund_topup(topup=paid, credits_cents=500, actor=operator, reason="partial")
    assert refund.gross_cents == 600
    assert get_wallet(paid.account_id).balance_micros == 1500 * M


def _vat_returned(topup: TopUp) -> int:
    """VAT the refunds so far gave back: what was returned beyond the credits (and the fee,
    which only a refund that completes the top-up returns)."""
    topup.refresh_from_db()
    refunded = topup.refunds.filter(status=RefundStatus.SUCCEEDED)
    gross = sum(r.gross_cents for r in refunded)
    credits = sum(r.credits_cents for r in refunded)
    fee = topup.fee_cents if credits == topup.credits_cents else 0
    return gross - credits - fee


def test_refunding_one_credit_at_a_time_returns_the_vat_on_the_credits_refunded_so_far(
    paid: TopUp, operator: User
) -> None:
    assert paid.vat_rate == Decimal("20")
    grosses = [
        refund_topup(topup=paid, credits_cents=1, actor=operator, reason="one").gross_cents
        for _ in range(5)
    ]
    # 20% of 1, 2, 3, 4, 5 credits rounds to 0, 0, 1, 1, 1 cents of VAT, cumulatively.
    assert grosses == [1, 1, 2, 1, 1]
    assert _vat_returned(paid) == 1


def test_vat_returned_over_partial_refunds_never_exceeds_and_finally_equals_the_vat_charged(
    paid: TopUp, operator: User
) -> None:
    assert (paid.credits_cents, paid.fee_cents, paid.vat_cents) == (2000, 80, 416)
    for credits in (1, 1, 998, 3, 997):
        refund_topup(topup=paid, credits_cents=credits, actor=operator, reason="in parts")
        assert _vat_returned(paid) <= paid.vat_cents
    assert _vat_returned(paid) == paid.vat_cents
    assert paid.refunded_gross_cents == paid.gross_cents == 2496
    assert paid.status == TopUpStatus.REFUNDED
    assert get_wallet(paid.account_id).balance_micros == 0 == ledger_sum(paid.account_id)


def test_spent_credit_is_not_refundable(paid: TopUp, operator: User) -> None:
    post_entry(account=paid.account_id, kind=LedgerKind.USAGE, amount_micros=-1500 * M)
    assert get_refundable_cents(paid) == 500
    with pytest.raises(RefundError, match="At most 500"):
        refund_topup(topup=paid, credits_cents=501, actor=operator, reason="x")


def test_promotional_credit_is_spent_first_and_never_refunded(paid: TopUp, operator: User) -> None:
    adjust_balance(
        account=paid.account_id,
        amount_micros=1000 * M,
        reason="welcome",
        actor=operator,
        kind=LedgerKind.PROMO_GRANT,
    )
    post_entry(account=paid.account_id, kind=LedgerKind.USAGE, amount_micros=-1000 * M)
    assert get_refundable_cents(paid) == 2000  # the usage ate the promo credit
    post_entry(account=paid.account_id, kind=LedgerKind.USAGE, amount_micros=-500 * M)
    assert get_refundable_cents(paid) == 1500  # balance 1500, all of it paid credit


def test_refund_after_the_cooling_off_window_is_refused(paid: TopUp, operator: User) -> None:
    TopUp.objects.filter(pk=paid.pk).update(paid_at=timezone.now() - timedelta(days=15))
    paid.refresh_from_db()
    with pytest.raises(RefundError):
        refund_topup(topup=paid, credits_cents=100, actor=operator, reason="late")


def test_without_stripe_configured_nothing_is_claimed(
    paid: TopUp, operator: User, settings: Any
) -> None:
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(RefundError, match="not configured"):
        refund_topup(topup=paid, credits_cents=100, actor=operator, reason="x")
    assert not Refund.objects.exists()
    assert get_wallet(paid.account_id).balance_micros == 2000 * M == ledger_sum(paid.account_id)
    assert get_refundable_cents(paid) == 2000
    # The periodic resend runs on such a server too: with nothing pending, it asks nothing.
    assert retry_pending_refunds(older_than=timedelta(0)) == 0


def _refund_entries(topup: TopUp) -> list[int]:
    return list(
        LedgerEntry.objects.filter(account_id=topup.account_id, kind=LedgerKind.REFUND)
        .order_by("pk")
        .values_list("amount_micros", flat=True)
    )


def _refunds_made(fake: FakeStripe) -> list[str]:
    return [body["id"] for body in fake.idempotent.values() if body["object"] == "refund"]


def test_stripe_refusal_puts_the_credits_back(
    paid: TopUp, operator: User, fake_stripe: FakeStripe
) -> None:
    fake_stripe.fail_next = 400
    with pytest.raises(RefundError, match="Stripe refused the refund: Injected failure"):
        refund_topup(topup=paid, credits_cents=100, actor=operator, reason="x")
    assert get_wallet(paid.account_id).balance_micros == 2000 * M == ledger_sum(paid.account_id)
    # Taken out, then put back: the ledger only ever grows.
    assert _refund_entries(paid) == [-100 * M, 100 * M]
    assert Refund.objects.get().status == RefundStatus.FAILED
    paid.refresh_from_db()
    assert (paid.refunded_credits_cents, paid.refunded_gross_cents) == (0, 0)
    assert paid.status == TopUpStatus.PAID and get_refundable_cents(paid) == 2000
    assert AuditEntry.objects.get(action="topup.refund.failed").changes["credits"] == 100
    assert not AuditEntry.objects.filter(action="topup.refund").exists()


def test_a_lost_answer_is_retried_by_the_client_and_refunds_once(
    paid: TopUp, operator: User, fake_stripe: FakeStripe
) -> None:
    fake_stripe.lose_answers = 1  # Stripe made it, the 500 came back instead of the refund
    refund = refund_topup(topup=paid, credits_cents=500, actor=operator, reason="x")
    assert refund.status == RefundStatus.SUCCEEDED
    calls = [r for r in fake_stripe.requests if r["path"] == "/v1/refunds"]
    assert len(calls) == 2
    assert {c["headers"]["Idempotency-Key"] for c in calls} == {f"refund-{refund.pk}"}
    assert _refunds_made(fake_stripe) == [refund.stripe_refund_id]


def _left_pending(
    paid: TopUp, operator: User, fake_stripe: FakeStripe, settings: Any, *, lost: bool
) -> Refund:
    """A refund Stripe gave no clear answer to: its answer lost (``lost``) or a 503, with no
    client retries."""
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    if lost:
        fake_stripe.lose_answers = 1
    else:
        fake_stripe.fail_next = 503
    with pytest.raises(RefundPending):
        refund_topup(topup=paid, credits_cents=500, actor=operator, reason="x")
    return Refund.objects.get()


def test_no_clear_answer_leaves_the_refund_pending_until_a_resend_confirms_it(
    paid: TopUp, operator: User, fake_stripe: FakeStripe, settings: Any
) -> None:
    refund = _left_pending(paid, operator, fake_stripe, settings, lost=True)
    assert refund.status == RefundStatus.PENDING and refund.stripe_refund_id is None
    # The credits stay out while Stripe may have sent the money.
    assert get_wallet(paid.account_id).balance_micros == 1500 * M == ledger_sum(paid.account_id)
    assert get_refundable_cents(paid) == 1500

    assert retry_pending_refunds(older_than=timedelta(minutes=5)) == 0  # too recent
    assert retry_pending_refunds(older_than=timedelta(0)) == 1
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    # One refund made at Stripe: the resend carried the same key and got the same refund.
    assert _refunds_made(fake_stripe) == [refund.stripe_refund_id]
    assert AuditEntry.objects.filter(action="topup.refund").count() == 1
    assert retry_pending_refunds(older_than=timedelta(0)) == 0
    assert _refund_entries(paid) == [-500 * M]


def test_a_pending_refund_refused_on_resend_puts_the_credits_back(
    paid: TopUp, operator: User, fake_stripe: FakeStripe, settings: Any
) -> None:
    _left_pending(paid, operator, fake_stripe, settings, lost=False)
    fake_stripe.fail_next = 400
    assert retry_pending_refunds(older_than=timedelta(0)) == 1
    assert Refund.objects.get().status == RefundStatus.FAILED
    assert get_wallet(paid.account_id).balance_micros == 2000 * M == ledger_sum(paid.account_id)


def test_a_pending_refund_past_its_key_lifetime_is_left_to_an_operator(
    paid: TopUp, operator: User, fake_stripe: FakeStripe, settings: Any
) -> None:
    _left_pending(paid, operator, fake_stripe, settings, lost=False)
    Refund.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=1))
    calls = len(fake_stripe.requests)
    assert retry_pending_refunds(older_than=timedelta(0)) == 0
    assert len(fake_stripe.requests) == calls  # not sent again: it could refund twice
    assert Refund.objects.get().status == RefundStatus.PENDING


def test_our_refunds_charge_refunded_event_is_a_no_op(paid: TopUp, operator: User) -> None:
    refund_topup(topup=paid, credits_cents=500, actor=operator, reason="x")
    event = {
        "id": "evt_ch",
        "type": "charge.refunded",
        "data": {"object": {"payment_intent": "pi_test_1", "amount_refunded": 600}},
    }
    post_event(Client(), event)
    assert get_wallet(paid.account_id).balance_micros == 1500 * M


def test_adjustment_needs_a_reason_and_is_audited(buyer: User, operator: User) -> None:
    with pytest.raises(ValueError):
        adjust_balance(account=buyer, amount_micros=5 * M, reason=" ", actor=operator)
    entry = adjust_balance(account=buyer, amount_micros=5 * M, reason="goodwill", actor=operator)
    assert entry.kind == LedgerKind.ADJUSTMENT and entry.actor == operator
    assert AuditEntry.objects.get(action="ledger.adjustment").changes["reason"] == "goodwill"


def test_a_slow_stripe_does_not_hold_the_accounts_rows(
    transactional_db: None, paid: TopUp, operator: User, fake_stripe: FakeStripe
) -> None:
    """While Stripe takes its time, the account's requests still settle against its wallet."""
    fake_stripe.release_refunds = threading.Event()
    done: dict[str, Refund] = {}

    def refund() -> None:
        try:
            done["refund"] = refund_topup(topup=paid, credits_cents=500, actor=operator, reason="")
        finally:
            connection.close()

    thread = threading.Thread(target=refund)
    thread.start()
    try:
        assert fake_stripe.refund_arrived.wait(10)
        post_entry(account=paid.account_id, kind=LedgerKind.USAGE, amount_micros=-1 * M)
        assert thread.is_alive()  # the debit above did not wait for Stripe's answer
    finally:
        fake_stripe.release_refunds.set()
        thread.join(15)
    assert done["refund"].status == RefundStatus.SUCCEEDED
    assert get_wallet(paid.account_id).balance_micros == 1499 * M == ledger_sum(paid.account_id)
