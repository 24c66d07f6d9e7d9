"""Creating, editing and revoking virtual keys."""

from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from accounts.audit import record_audit
from accounts.models import User
from keys.models import ApiKey

POLICY_FIELDS = (
    "name",
    "models",
    "region",
    "daily_credit_limit",
    "monthly_credit_limit",
    "expires_at",
    "prefer_low_carbon",
    "enabled",
)


class KeyPolicyError(ValueError):
    pass


def _check_limit(name: str, value: object) -> Decimal | None:
    if value is None:
        return None
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise KeyPolicyError(f"{name} must be a non-negative number of credits.")
    try:
        return value.quantize(Decimal("0.01"))
    except InvalidOperation as exc:  # an exponent too large to carry cents
        raise KeyPolicyError(f"{name} is too large.") from exc


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
    actor: User | None = None,
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
    record_audit(
        actor=actor,
        account=account,
        action="key.create",
        target=f"key:{key.pk}",
        changes={f: _jsonable(getattr(key, f)) for f in POLICY_FIELDS},
    )
    return key, token


def _jsonable(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@transaction.atomic
def update_key(key: ApiKey, *, actor: User | None = None, **changes: object) -> ApiKey:
    """Edit a key's policy. Effective on the next request: keys are read per request."""
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise KeyPolicyError(f"Unknown key fields: {', '.join(sorted(unknown))}.")
    for name in ("daily_credit_limit", "monthly_credit_limit"):
        if name in changes:
            changes[name] = _check_limit(name, changes[name])
    before = {f: _jsonable(getattr(key, f)) for f in changes}
    for name, value in changes.items():
        setattr(key, name, value)
    key.save(update_fields=list(changes))
    diff = {f: [before[f], _jsonable(getattr(key, f))] for f in changes}
    record_audit(
        actor=actor,
        account=key.account_id,
        action="key.update",
        target=f"key:{key.pk}",
        changes=diff,
    )
    return key


@transaction.atomic
def revoke_key(key: ApiKey, *, actor: User | None = None) -> None:
    """Revocation is final: the digest stays (history) but never authenticates again."""
    revoked = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), enabled=False
    )
    if revoked:
        record_audit(
            actor=actor,
            account=key.account_id,
            action="key.revoke",
            target=f"key:{key.pk}",
            changes={},
        )
