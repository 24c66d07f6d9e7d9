"""The audit trail: one row per change someone made to an account's keys, money or details.

Call ``record_audit`` inside the same atomic block as the change it records, so the trail
can never claim a change that rolled back, nor miss one that committed.
"""

from typing import Any

from accounts.models import AuditEntry, User


def record_audit(
    *,
    actor: User | None,
    account: User | int | None,
    action: str,
    target: str,
    changes: dict[str, Any],
) -> AuditEntry:
    """Append one entry; ``changes`` is JSON, e.g. {"field": [old, new]}."""
    account_id = account if isinstance(account, int) or account is None else account.pk
    return AuditEntry.objects.create(
        actor=actor, account_id=account_id, action=action, target=target, changes=changes
    )
