"""Redemption races on PostgreSQL (see test_payments_concurrency for the harness)."""

import os

import pytest

from billing.campaigns import RedeemError, create_codes, redeem_code
from billing.ledger import get_wallet
from billing.models import Campaign, LedgerEntry, LedgerKind
from tests.billing.test_payments_concurrency import run_together
from tests.factories import CampaignFactory, UserFactory

ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres")
pytestmark = [
    pytest.mark.skipif(not ON_POSTGRES, reason="needs DATABASE_URL (PostgreSQL)"),
    pytest.mark.django_db(transaction=True),
]


def make_campaign(cap: int) -> Campaign:
    return CampaignFactory(name="race", credit_micros=100_000_000, max_redemptions=cap)


@pytest.mark.parametrize("round_", range(3))
def test_users_racing_for_the_last_redemption_succeed_once(round_: int) -> None:
    campaign = make_campaign(cap=1)
    codes = create_codes(campaign=campaign, count=6, actor=None)
    users = UserFactory.create_batch(6)
    results = run_together(
        [
            lambda u=u, c=c: redeem_code(user=u, code=c.code)
            for u, c in zip(users, codes, strict=True)
        ]
    )
    assert sum(isinstance(r, LedgerEntry) for r in results) == 1
    assert all(isinstance(r, (LedgerEntry, RedeemError)) for r in results)
    campaign.refresh_from_db()
    assert campaign.redemptions_count == 1
    assert LedgerEntry.objects.filter(kind=LedgerKind.ACTIVATION_CODE).count() == 1


@pytest.mark.parametrize("round_", range(3))
def test_one_user_redeeming_twice_at_once_succeeds_once(round_: int) -> None:
    campaign = make_campaign(cap=100)
    codes = create_codes(campaign=campaign, count=4, actor=None)
    user = UserFactory()
    # Two threads on the same code, two on other codes of the same campaign.
    attempts = [codes[0], codes[0], codes[1], codes[2]]
    results = run_together([lambda c=c: redeem_code(user=user, code=c.code) for c in attempts])
    assert sum(isinstance(r, LedgerEntry) for r in results) == 1
    assert all(isinstance(r, (LedgerEntry, RedeemError)) for r in results)
    assert get_wallet(user).balance_micros == 100_000_000
    campaign.refresh_from_db()
    assert campaign.redemptions_count == 1
