"""Campaigns and activation codes: operator-led onboarding credit.

LowRouter has no free tier; credit of this kind exists only when an operator creates a
campaign. Codes are single-use; a user gets a campaign's credit once.
"""

import csv
import io
import secrets
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.audit import record_audit
from accounts.models import User
from billing.ledger import post_entry
from billing.models import (
    ActivationCode,
    Campaign,
    CampaignEligibility,
    LedgerEntry,
    LedgerKind,
    Redemption,
)
from billing.money import format_credits

# No 0/O, 1/I/L: codes are read aloud and typed from paper.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_GROUPS, CODE_GROUP_LEN = 3, 4


class RedeemError(Exception):
    """A code that cannot be redeemed; ``code`` is stable, the message is for the user."""

    code = "invalid_code"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or self.code


def normalise_code(raw: str) -> str:
    compact = "".join(ch for ch in raw.upper() if ch.isalnum())
    parts = [compact[i : i + CODE_GROUP_LEN] for i in range(0, len(compact), CODE_GROUP_LEN)]
    return "-".join(parts)


def new_code() -> str:
    return "-".join(
        "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUP_LEN))
        for _ in range(CODE_GROUPS)
    )


@transaction.atomic
def create_codes(*, campaign: Campaign, count: int, actor: User | None) -> list[ActivationCode]:
    """A batch of fresh codes. Collisions are possible in principle (31^12 space), so the
    unique constraint decides and a clashing code is simply drawn again."""
    if not 0 < count <= 10_000:
        raise ValueError("Generate between 1 and 10000 codes at a time.")
    created: list[ActivationCode] = []
    while len(created) < count:
        try:
            with transaction.atomic():
                created.append(ActivationCode.objects.create(campaign=campaign, code=new_code()))
        except IntegrityError:
            continue
    record_audit(
        actor=actor,
        account=None,
        action="campaign.codes.create",
        target=f"campaign:{campaign.pk}",
        changes={"count": count},
    )
    return created


def export_codes_csv(campaign: Campaign) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["campaign", "code", "credits", "deadline", "redeemed_at"])
    credits = format_credits(campaign.credit_micros)
    for code in campaign.codes.order_by("id"):
        writer.writerow(
            [
                campaign.name,
                code.code,
                credits,
                campaign.deadline.isoformat(),
                code.redeemed_at.isoformat() if code.redeemed_at else "",
            ]
        )
    return out.getvalue()


def export_codes(*, campaign: Campaign, actor: User) -> str:
    """The codes as CSV for an operator; each export is audited, as the codes carry credit."""
    record_audit(
        actor=actor,
        account=None,
        action="campaign.codes.export",
        target=f"campaign:{campaign.pk}",
        changes={"count": campaign.codes.count()},
    )
    return export_codes_csv(campaign)


def _check_campaign(campaign: Campaign, user: User, now: datetime) -> None:
    if now < campaign.starts_at:
        raise RedeemError("This code is not active yet.", "campaign_not_started")
    if now >= campaign.deadline:
        raise RedeemError("This code has expired.", "campaign_expired")
    if (
        campaign.eligibility == CampaignEligibility.NEW_ACCOUNTS
        and user.date_joined < campaign.starts_at
    ):
        raise RedeemError("This code is for accounts created during the campaign.", "not_eligible")


def redeem_code(*, user: User, code: str) -> LedgerEntry:
    """Grant the campaign's credit for ``code`` to ``user``, or raise RedeemError.

    Races defended, all inside one transaction so a loser leaves nothing behind:
    - two users with the same code: the conditional UPDATE on the code (still unredeemed)
      lets one through;
    - two users racing for the campaign's last redemption: the conditional UPDATE on the
      counter (below the cap, before the deadline) lets one through;
    - one user redeeming twice at once (same or different codes of a campaign): the unique
      constraint on (campaign, account) rejects the second insert.
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            found = (
                ActivationCode.objects.select_related("campaign")
                .filter(code=normalise_code(code))
                .first()
            )
            if found is None:
                raise RedeemError("This code does not exist.", "invalid_code")
            campaign = found.campaign
            _check_campaign(campaign, user, now)
            if Redemption.objects.filter(campaign=campaign, account=user).exists():
                raise RedeemError("You already redeemed this campaign.", "already_redeemed")
            claimed = ActivationCode.objects.filter(pk=found.pk, redeemed_at__isnull=True).update(
                redeemed_at=now
            )
            if claimed != 1:
                raise RedeemError("This code was already used.", "code_used")
            counted = Campaign.objects.filter(
                pk=campaign.pk,
                redemptions_count__lt=F("max_redemptions"),
                deadline__gt=now,
            ).update(redemptions_count=F("redemptions_count") + 1)
            if counted != 1:
                raise RedeemError("This campaign has no redemptions left.", "campaign_exhausted")
            entry = post_entry(
                account=user,
                kind=LedgerKind.ACTIVATION_CODE,
                amount_micros=campaign.credit_micros,
                reference=f"campaign:{campaign.pk}",
                reason=f"Activation code {found.code}",
            )
            Redemption.objects.create(
                campaign=campaign, code=found, account=user, ledger_entry=entry
            )
    except IntegrityError as exc:
        raise RedeemError("You already redeemed this campaign.", "already_redeemed") from exc
    return entry
