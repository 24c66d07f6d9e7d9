"""Changing an account's details: each change and its audit entry in one transaction."""

from datetime import datetime
from decimal import Decimal

from django.db import transaction

from accounts.audit import record_audit
from accounts.models import BillingProfile, Preferences, User

BILLING_FIELDS = ("legal_name", "address", "country", "vat_number", "vat_number_validated_at")
PREFERENCE_FIELDS = (
    "eco_baseline_model",
    "low_balance_threshold",
    "monthly_summary",
    "invoice_emails",
    "price_notices",
)


def _jsonable(value: object) -> object:
    if isinstance(value, Decimal | datetime):
        return str(value)
    return value


def _apply(obj: object, changes: dict[str, object]) -> dict[str, list[object]]:
    diff = {}
    for name, value in changes.items():
        old = getattr(obj, name)
        if old != value:
            diff[name] = [_jsonable(old), _jsonable(value)]
            setattr(obj, name, value)
    return diff


@transaction.atomic
def update_billing_details(
    *, account: User, actor: User | None, **changes: object
) -> BillingProfile:
    """Legal name, address, country, VAT number (and when VIES confirmed it). Invoices issued
    from now on carry them; past invoices keep what they were issued with."""
    unknown = set(changes) - set(BILLING_FIELDS)
    if unknown:
        raise ValueError(f"Unknown billing fields: {', '.join(sorted(unknown))}")
    profile, _ = BillingProfile.objects.select_for_update().get_or_create(account=account)
    diff = _apply(profile, changes)
    if diff:
        profile.save()
        record_audit(
            actor=actor, account=account, action="billing_details.update", target="", changes=diff
        )
    return profile


@transaction.atomic
def update_preferences(*, account: User, actor: User | None, **changes: object) -> Preferences:
    unknown = set(changes) - set(PREFERENCE_FIELDS)
    if unknown:
        raise ValueError(f"Unknown preferences: {', '.join(sorted(unknown))}")
    prefs, _ = Preferences.objects.select_for_update().get_or_create(account=account)
    diff = _apply(prefs, changes)
    if diff:
        if "low_balance_threshold" in diff:
            prefs.low_balance_alerted = False  # a new threshold is a new crossing to watch
        prefs.save()
        record_audit(
            actor=actor, account=account, action="preferences.update", target="", changes=diff
        )
    return prefs
