"""Opening a billing account: the user, a verified address if asked, the wallet and its first credit
(granted through the ledger). Used by the create_account and demo_setup commands and by tests."""

from decimal import Decimal

from allauth.account.models import EmailAddress
from django.db import transaction

from accounts.models import User
from billing.ledger import get_wallet, post_entry
from billing.models import LedgerKind
from billing.money import credits_to_micros


@transaction.atomic
def create_account(
    *,
    email: str,
    password: str | None = None,
    credits: Decimal = Decimal(0),
    verified: bool = False,
    staff: bool = False,
    reason: str = "initial credit",
) -> User:
    """Create (or find) the account for ``email`` and grant ``credits`` through the ledger."""
    email = email.strip().lower()
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=password, is_staff=staff)
    get_wallet(user)
    if verified:
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
    if credits:
        post_entry(
            account=user,
            kind=LedgerKind.ADJUSTMENT,
            amount_micros=credits_to_micros(credits),
            reason=reason,
        )
    return user
