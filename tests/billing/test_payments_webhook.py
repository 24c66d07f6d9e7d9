import json
import time
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from accounts.models import User
from billing.checkout import start_checkout
from billing.ledger import get_wallet, ledger_sum
from billing.models import (
    Invoice,
    LedgerEntry,
    LedgerKind,
    StripeEvent,
    StripeEventStatus,
    TopUp,
    TopUpStatus,
)
from tests.billing.payments_helpers import (
    FakeStripe,
    charge_refunded_event,
    post_event,
    session_event,
    sign_payload,
)

pytestmark = pytest.mark.django_db

CREDITED = 2000 * 1_000_000  # 20 EUR of credits in micros


@pytest.fixture
def topup(fake_stripe: FakeStripe, buyer: User) -> TopUp:
    topup, _ = start_checkout(
        account=buyer, credits_eur=Decimal("20"), success_url="s", cancel_url="c"
    )
    return topup


def completed(topup: TopUp, event_id: str = "evt_1", **kw: str) -> dict:
    return session_event(
        event_id=event_id,
        type="checkout.session.completed",
        session_id=topup.stripe_session_id,
        topup_id=topup.pk,
        **kw,
    )


def test_paid_session_credits_the_wallet_and_issues_an_invoice(
    topup: TopUp, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_event(Client(), completed(topup))
    assert response.status_code == 200
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PAID
    assert topup.stripe_payment_intent_id == "pi_test_1"
    assert get_wallet(topup.account_id).balance_micros == CREDITED
    assert topup.ledger_entry.kind == LedgerKind.TOPUP
    invoice = Invoice.objects.get(topup=topup)
    assert invoice.gross_cents == 2496
    assert len(mail.outbox) == 1 and mail.outbox[0].attachments[0][0] == f"{invoice.number}.pdf"


def test_the_same_event_twice_credits_once(topup: TopUp) -> None:
    client = Client()
    assert post_event(client, completed(topup)).status_code == 200
    assert post_event(client, completed(topup)).status_code == 200
    assert LedgerEntry.objects.filter(kind=LedgerKind.TOPUP).count() == 1
    assert get_wallet(topup.account_id).balance_micros == CREDITED
    assert StripeEvent.objects.get().status == StripeEventStatus.PROCESSED
    assert Invoice.objects.count() == 1


def test_sepa_is_credited_on_async_success_only(topup: TopUp) -> None:
    client = Client()
    post_event(client, completed(topup, payment_status="unpaid"))
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PENDING
    assert get_wallet(topup.account_id).balance_micros == 0
    async_ok = session_event(
        event_id="evt_2",
        type="checkout.session.async_payment_succeeded",
        session_id=topup.stripe_session_id,
        topup_id=topup.pk,
    )
    post_event(client, async_ok)
    assert get_wallet(topup.account_id).balance_micros == CREDITED


def test_completed_and_async_succeeded_for_one_payment_credit_once(topup: TopUp) -> None:
    client = Client()
    post_event(client, completed(topup))
    async_ok = session_event(
        event_id="evt_2",
        type="checkout.session.async_payment_succeeded",
        session_id=topup.stripe_session_id,
        topup_id=topup.pk,
    )
    post_event(client, async_ok)
    assert ledger_sum(topup.account_id) == CREDITED


def test_async_payment_failure_marks_the_topup_failed(topup: TopUp) -> None:
    failed = session_event(
        event_id="evt_3",
        type="checkout.session.async_payment_failed",
        session_id=topup.stripe_session_id,
        topup_id=topup.pk,
        payment_status="unpaid",
    )
    assert post_event(Client(), failed).status_code == 200
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.FAILED
    assert get_wallet(topup.account_id).balance_micros == 0


def test_bad_signature_is_rejected_and_not_stored(topup: TopUp) -> None:
    payload = json.dumps(completed(topup)).encode()
    forged = sign_payload(payload, secret="whsec_someone_else")
    assert post_event(Client(), completed(topup), signature=forged).status_code == 400
    assert post_event(Client(), completed(topup), signature="").status_code == 400
    assert not StripeEvent.objects.exists()
    assert get_wallet(topup.account_id).balance_micros == 0


def test_without_a_webhook_secret_an_event_signed_with_the_empty_key_is_refused(
    topup: TopUp, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.STRIPE_WEBHOOK_SECRET = ""
    event = completed(topup)
    signed_with_empty_key = sign_payload(json.dumps(event).encode(), secret="")
    with caplog.at_level("ERROR", logger="billing.views"):
        response = post_event(Client(), event, signature=signed_with_empty_key)
    assert response.status_code == 503
    assert "STRIPE_WEBHOOK_SECRET" in caplog.text
    assert not StripeEvent.objects.exists()
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PENDING
    assert get_wallet(topup.account_id).balance_micros == 0


def test_stale_signature_is_rejected(topup: TopUp) -> None:
    payload = json.dumps(completed(topup)).encode()
    stale = sign_payload(payload, at=int(time.time()) - 600)
    response = Client().post(
        "/billing/stripe/webhook",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stale,
    )
    assert response.status_code == 400


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b"\xff\xfe{}"])
def test_a_signed_body_that_is_not_an_event_is_rejected(payload: bytes) -> None:
    response = Client().post(
        "/billing/stripe/webhook",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign_payload(payload),
    )
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_unknown_event_types_are_stored_and_ignored() -> None:
    event = {"id": "evt_x", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    assert post_event(Client(), event).status_code == 200
    assert StripeEvent.objects.get().status == StripeEventStatus.IGNORED


def test_refund_made_in_the_stripe_dashboard_takes_the_credits_back(topup: TopUp) -> None:
    client = Client()
    post_event(client, completed(topup))
    refunded = charge_refunded_event(
        event_id="evt_r", payment_intent="pi_test_1", amount_refunded=2496
    )
    assert post_event(client, refunded).status_code == 200
    post_event(client, {**refunded, "id": "evt_r2"})  # a later total that adds nothing
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.REFUNDED
    assert get_wallet(topup.account_id).balance_micros == 0
    assert ledger_sum(topup.account_id) == 0
