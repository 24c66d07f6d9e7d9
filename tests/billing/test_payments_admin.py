from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from payments_helpers import FakeStripe, post_event, session_event

from accounts.models import AuditEntry, User
from billing.checkout import start_checkout
from billing.ledger import get_wallet
from billing.models import Campaign, Refund, RefundStatus, TopUp
from tests.conftest import make_operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client() -> Client:
    client = Client()
    client.force_login(make_operator("admin@example.com"))
    return client


def _paid_topup(buyer: User) -> TopUp:
    topup, _ = start_checkout(
        account=buyer, credits_eur=Decimal("10"), success_url="s", cancel_url="c"
    )
    post_event(
        Client(),
        session_event(
            event_id="evt_1",
            type="checkout.session.completed",
            session_id=topup.stripe_session_id,
            topup_id=topup.pk,
        ),
    )
    return topup


def test_operator_refunds_a_topup_from_the_admin(
    fake_stripe: FakeStripe, buyer: User, operator_client: Client
) -> None:
    topup = _paid_topup(buyer)
    url = f"/admin/billing/topup/{topup.pk}/refund/"
    page = operator_client.get(url)
    assert page.status_code == 200 and "Refundable now: <strong>1000</strong>" in page.text
    response = operator_client.post(url, {"credits": "400", "reason": "asked by email"})
    assert response.status_code == 302
    assert Refund.objects.get().credits_cents == 400
    assert get_wallet(buyer).balance_micros == 600 * 1_000_000
    assert AuditEntry.objects.filter(action="topup.refund").exists()
    listed = operator_client.get("/admin/billing/refund/")
    assert listed.status_code == 200 and "Succeeded" in listed.text


def test_a_refund_stripe_did_not_confirm_is_shown_as_pending(
    fake_stripe: FakeStripe, buyer: User, operator_client: Client, settings: Any
) -> None:
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    topup = _paid_topup(buyer)
    fake_stripe.fail_next = 503
    response = operator_client.post(
        f"/admin/billing/topup/{topup.pk}/refund/",
        {"credits": "400", "reason": "asked by email"},
        follow=True,
    )
    assert "Stripe did not confirm the refund" in response.text
    assert Refund.objects.get().status == RefundStatus.PENDING
    assert "Pending" in operator_client.get("/admin/billing/refund/").text


def test_operator_adjusts_a_balance_with_a_reason(buyer: User, operator_client: Client) -> None:
    wallet = get_wallet(buyer)
    response = operator_client.post(
        f"/admin/billing/wallet/{wallet.pk}/adjust/",
        {"credits": "12.5", "kind": "adjustment", "reason": "outage credit"},
    )
    assert response.status_code == 302
    assert get_wallet(buyer).balance_micros == 12_500_000


def test_operator_generates_a_batch_of_codes_as_csv(operator_client: Client) -> None:
    campaign = Campaign.objects.create(
        name="Meetup",
        credit_micros=100_000_000,
        deadline=timezone.now() + timedelta(days=7),
        max_redemptions=50,
    )
    response = operator_client.post(f"/admin/billing/campaign/{campaign.pk}/codes/", {"count": 5})
    assert response["Content-Type"] == "text/csv"
    assert len(response.content.decode().splitlines()) == 6
