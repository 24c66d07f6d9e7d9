from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from billing.campaigns import RedeemError, create_codes, export_codes_csv, redeem_code
from billing.ledger import get_wallet
from billing.models import CampaignEligibility, LedgerKind
from tests.factories import CampaignFactory, UserFactory

pytestmark = pytest.mark.django_db
M = 1_000_000


@pytest.fixture
def user(db: None) -> User:
    return UserFactory()


def test_a_code_grants_the_campaign_credit(user: User) -> None:
    campaign = CampaignFactory()
    (code,) = create_codes(campaign=campaign, count=1, actor=None)
    entry = redeem_code(user=user, code=code.code.lower().replace("-", " "))
    assert entry.kind == LedgerKind.ACTIVATION_CODE and entry.amount_micros == 500 * M
    assert get_wallet(user).balance_micros == 500 * M
    campaign.refresh_from_db()
    assert campaign.redemptions_count == 1


def test_a_user_redeems_a_campaign_once(user: User) -> None:
    first, second = create_codes(campaign=CampaignFactory(), count=2, actor=None)
    redeem_code(user=user, code=first.code)
    with pytest.raises(RedeemError) as err:
        redeem_code(user=user, code=second.code)
    assert err.value.code == "already_redeemed"
    second.refresh_from_db()
    assert second.redeemed_at is None  # the failed attempt left nothing behind


def test_a_used_code_cannot_be_used_by_someone_else(user: User) -> None:
    (code,) = create_codes(campaign=CampaignFactory(), count=1, actor=None)
    redeem_code(user=user, code=code.code)
    other = UserFactory()
    with pytest.raises(RedeemError) as err:
        redeem_code(user=other, code=code.code)
    assert err.value.code == "code_used"


def test_the_cap_stops_redemptions(user: User) -> None:
    campaign = CampaignFactory(max_redemptions=1)
    a, b = create_codes(campaign=campaign, count=2, actor=None)
    redeem_code(user=user, code=a.code)
    with pytest.raises(RedeemError) as err:
        redeem_code(user=UserFactory(), code=b.code)
    assert err.value.code == "campaign_exhausted"


def test_expired_and_unknown_codes_are_refused(user: User) -> None:
    campaign = CampaignFactory(deadline=timezone.now() - timedelta(seconds=1))
    (code,) = create_codes(campaign=campaign, count=1, actor=None)
    with pytest.raises(RedeemError) as err:
        redeem_code(user=user, code=code.code)
    assert err.value.code == "campaign_expired"
    with pytest.raises(RedeemError) as err:
        redeem_code(user=user, code="NOPE-NOPE-NOPE")
    assert err.value.code == "invalid_code"


def test_new_accounts_only_campaign_refuses_older_accounts() -> None:
    campaign = CampaignFactory(eligibility=CampaignEligibility.NEW_ACCOUNTS)
    old = UserFactory(date_joined=campaign.starts_at - timedelta(days=1))
    a, b = create_codes(campaign=campaign, count=2, actor=None)
    with pytest.raises(RedeemError) as err:
        redeem_code(user=old, code=a.code)
    assert err.value.code == "not_eligible"
    new = UserFactory()
    assert redeem_code(user=new, code=b.code).amount_micros == 500 * M


def test_codes_export_as_csv() -> None:
    campaign = CampaignFactory()
    codes = create_codes(campaign=campaign, count=3, actor=None)
    lines = export_codes_csv(campaign).splitlines()
    assert lines[0] == "campaign,code,credits,deadline,redeemed_at"
    assert [line.split(",")[1] for line in lines[1:]] == [c.code for c in codes]
    assert lines[1].split(",")[2] == "500.00"


def test_redeem_page(user: User) -> None:
    (code,) = create_codes(campaign=CampaignFactory(), count=1, actor=None)
    client = Client()
    client.force_login(user)
    assert client.get("/billing/redeem").status_code == 200
    ok = client.post("/billing/redeem", {"code": code.code})
    assert ok.status_code == 200 and "500.00 credits" in ok.content.decode()
    again = client.post("/billing/redeem", {"code": code.code})
    assert again.status_code == 400 and "already" in again.content.decode()
