from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from accounts.models import AuditEntry, User
from billing.checkout import start_checkout
from billing.ledger import get_wallet
from billing.models import LedgerEntry, Refund, RefundStatus, TopUp
from tests.billing.payments_helpers import FakeStripe, post_event, session_event
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

StaffClientMaker = Callable[..., tuple[User, Client]]  # the staff_client fixture (conftest)


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
    fake_stripe: FakeStripe, buyer: User, admin_client: Client
) -> None:
    topup = _paid_topup(buyer)
    url = f"/admin/billing/topup/{topup.pk}/refund/"
    page = admin_client.get(url)
    assert page.status_code == 200 and "Refundable now: <strong>1000</strong>" in page.text
    response = admin_client.post(url, {"credits": "400", "reason": "asked by email"})
    assert response.status_code == 302
    assert Refund.objects.get().credits_cents == 400
    assert get_wallet(buyer).balance_micros == 600 * 1_000_000
    assert AuditEntry.objects.filter(action="topup.refund").exists()
    listed = admin_client.get("/admin/billing/refund/")
    assert listed.status_code == 200 and "Succeeded" in listed.text


def test_a_refund_stripe_did_not_confirm_is_shown_as_pending(
    fake_stripe: FakeStripe, buyer: User, admin_client: Client, settings: Any
) -> None:
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    topup = _paid_topup(buyer)
    fake_stripe.fail_next = 503
    response = admin_client.post(
        f"/admin/billing/topup/{topup.pk}/refund/",
        {"credits": "400", "reason": "asked by email"},
        follow=True,
    )
    assert "Stripe did not confirm the refund" in response.text
    assert Refund.objects.get().status == RefundStatus.PENDING
    assert "Pending" in admin_client.get("/admin/billing/refund/").text


def test_operator_with_adjust_wallet_adjusts_a_balance_and_is_the_audited_actor(
    buyer: User, staff_client: StaffClientMaker
) -> None:
    staff, client = staff_client("billing.adjust_wallet")
    wallet = get_wallet(buyer)
    response = client.post(
        f"/admin/billing/wallet/{wallet.pk}/adjust/",
        {"credits": "12.5", "kind": "adjustment", "reason": "outage credit"},
    )
    assert response.status_code == 302
    assert get_wallet(buyer).balance_micros == 12_500_000
    audit = AuditEntry.objects.get(action="ledger.adjustment")
    assert audit.actor == staff and audit.account == buyer


def test_operator_generates_a_batch_of_codes_as_csv(admin_client: Client) -> None:
    campaign = CampaignFactory(name="Meetup", credit_micros=100_000_000, max_redemptions=50)
    response = admin_client.post(f"/admin/billing/campaign/{campaign.pk}/codes/", {"count": 5})
    assert response["Content-Type"] == "text/csv"
    assert len(response.content.decode().splitlines()) == 6


def test_staff_with_refund_topup_refunds_and_is_the_audited_actor(
    fake_stripe: FakeStripe, buyer: User, staff_client: StaffClientMaker
) -> None:
    topup = _paid_topup(buyer)
    staff, client = staff_client("billing.refund_topup")
    response = client.post(
        f"/admin/billing/topup/{topup.pk}/refund/", {"credits": "100", "reason": "asked"}
    )
    assert response.status_code == 302
    assert AuditEntry.objects.get(action="topup.refund").actor == staff


def test_staff_with_issue_codes_generates_and_exports_codes_audited(
    staff_client: StaffClientMaker,
) -> None:
    staff, client = staff_client("billing.issue_codes", "billing.view_campaign")
    campaign = CampaignFactory(name="Meetup", credit_micros=100_000_000, max_redemptions=50)
    created = client.post(f"/admin/billing/campaign/{campaign.pk}/codes/", {"count": 2})
    assert created["Content-Type"] == "text/csv"
    exported = client.post(
        "/admin/billing/campaign/",
        {"action": "export_selected_codes", "_selected_action": [campaign.pk]},
    )
    assert len(exported.content.decode().splitlines()) == 3
    actions = dict(AuditEntry.objects.values_list("action", "actor"))
    assert actions == {"campaign.codes.create": staff.pk, "campaign.codes.export": staff.pk}


@pytest.mark.parametrize("credits", ["NaN", "Infinity", "-inf", "1e30", "99999999999999999999"])
def test_a_bad_number_in_the_adjust_form_is_a_form_error(
    buyer: User, admin_client: Client, credits: str
) -> None:
    wallet = get_wallet(buyer)
    response = admin_client.post(
        f"/admin/billing/wallet/{wallet.pk}/adjust/",
        {"credits": credits, "kind": "adjustment", "reason": "typo"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["credits"]
    assert get_wallet(buyer).balance_micros == 0
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize("credits", ["NaN", "1e30", "99999999999999999999", "0"])
def test_a_bad_number_in_the_refund_form_is_a_form_error(
    fake_stripe: FakeStripe, buyer: User, admin_client: Client, credits: str
) -> None:
    topup = _paid_topup(buyer)
    response = admin_client.post(
        f"/admin/billing/topup/{topup.pk}/refund/", {"credits": credits, "reason": "typo"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["credits"]
    assert not Refund.objects.exists()


@pytest.mark.parametrize("count", ["NaN", "1e30", "99999999999999999999", "-1"])
def test_a_bad_number_in_the_codes_form_is_a_form_error(admin_client: Client, count: str) -> None:
    campaign = CampaignFactory(name="Meetup", credit_micros=100_000_000, max_redemptions=50)
    response = admin_client.post(f"/admin/billing/campaign/{campaign.pk}/codes/", {"count": count})
    assert response.status_code == 200
    assert response.context["form"].errors["count"]
    assert not campaign.codes.exists()
