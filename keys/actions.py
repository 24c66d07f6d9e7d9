"""Creating, editing and revoking virtual keys."""

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from keys.models import ApiKey


class KeyPolicyError(ValueError):
    pass


def _check_limit(name: str, value: Decimal | None) -> Decimal | None:
    if value is None:
        return None
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise KeyPolicyError(f"{name} must be a non-negative number of credits.")
    return value.quantize(Decimal("0.01"))


@transaction.atomic
def create_key(
    *,
    account: User,
    name: str,
    models: list[str] | None = None,
    region: str = "",
    daily_credit_limit: Decimal | None = None,
    monthly_credit_limit: Decimal | None = None,
    expires_at: datetime | None = None,
    prefer_low_carbon: bool = False,
    enabled: bool = True,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its token: the only time the token exists in clear."""
    if not name.strip():
        raise KeyPolicyError("A key needs a name.")
    if expires_at is not None and expires_at <= timezone.now():
        raise KeyPolicyError("expires_at must be in the future.")
    key = ApiKey(
        account=account,
        name=name.strip(),
        models=sorted(set(models or [])),
        region=region,
        daily_credit_limit=_check_limit("daily_credit_limit", daily_credit_limit),
        monthly_credit_limit=_check_limit("monthly_credit_limit", monthly_credit_limit),
        expires_at=expires_at,
        prefer_low_carbon=prefer_low_carbon,
        enabled=enabled,
    )
    token = key.set_new_token()
    key.save()
    return key, token


def revoke_key(key: ApiKey) -> None:
    """Revocation is final: the digest stays (history) but never authenticates again."""
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), enabled=False
    )
