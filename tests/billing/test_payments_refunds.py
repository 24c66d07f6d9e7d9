from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone
from payments_helpers import FakeStripe, post_event, session_event

from accounts.models import AuditEntry, User
from billing.checkout import start_checkout
from billing.ledger import get_wallet, ledger_sum, post_entry
from billing.models import LedgerKind, Refund, TopUp, TopUpStatus
from billing.refunds import RefundError, adjust_balance, get_refundable_cents, refund_topup

pytestmark = pytest.mark.django_db
M = 1_000_000  # micros per credit


@pytest.fixture
def operator(db: None) -> User:
    return User.objects.create_user("op@example.com", is_staff=True)


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
    req = fake_stripe.requests[-1]
    assert req["path"] == "/v1/refunds"
    assert req["form"] == {
        "payment_intent": "pi_test_1",
        "amount": "2496",
        "metadata[topup_id]": str(paid.pk),
    }
    paid.refresh_from_db()
    assert paid.status == TopUpStatus.REFUNDED
    assert get_wallet(paid.account_id).balance_micros == 0 == ledger_sum(paid.account_id)
    audit = AuditEntry.objects.get(action="topup.refund")
    assert audit.actor == operator and audit.changes["gross_cents"] == 2496


def test_partial_refund_returns_credits_plus_their_vat(paid: TopUp, operator: User) -> None:
    refund = refund_topup(topup=paid, credits_cents=500, actor=operator, reason="partial")
    assert refund.gross_cents == 600
    assert get_wallet(paid.account_id).balance_micros == 1500 * M


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


def test_stripe_refusal_leaves_the_ledger_untouched(
    paid: TopUp, operator: User, fake_stripe: FakeStripe
) -> None:
    fake_stripe.fail_next = 400
    with pytest.raises(RefundError):
        refund_topup(topup=paid, credits_cents=100, actor=operator, reason="x")
    assert get_wallet(paid.account_id).balance_micros == 2000 * M
    assert not Refund.objects.exists()


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
