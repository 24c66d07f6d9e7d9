"""Account routing defaults held in memory, so routing adds no database query per request.

Every account's policy is loaded into one immutable map, reloaded when the version counter in
the shared cache moves (bumped by ``save_policy``/``delete_policy``), checked at most every
CHECK_INTERVAL seconds: the same pattern as the catalogue snapshot. Policies are few (an
account sets one at most) and small, so the whole table fits in every process.
"""

import time
from dataclasses import dataclass

from django.db import transaction

from accounts.audit import record_audit
from accounts.models import User
from lowrouter.asyncdb import STALE_GRACE_S
from lowrouter.cache import shared_cache as cache
from routing.models import AccountRoutingPolicy

VERSION_CACHE_KEY = "routing:policy-version"
CHECK_INTERVAL = 0.5


@dataclass(frozen=True)
class AccountPolicy:
    account_id: int
    preferred_region: str = ""
    prefer_low_carbon: bool = False
    fixed_provider: str = ""
    provider_allowlist: tuple[str, ...] = ()
    provider_denylist: tuple[str, ...] = ()
    prefer_cheapest: bool = False


NO_POLICY = AccountPolicy(account_id=0)


def _as_policy(row: AccountRoutingPolicy) -> AccountPolicy:
    return AccountPolicy(
        account_id=row.account_id,
        preferred_region=row.preferred_region,
        prefer_low_carbon=row.prefer_low_carbon,
        fixed_provider=row.fixed_provider,
        provider_allowlist=tuple(str(p) for p in row.provider_allowlist or ()),
        provider_denylist=tuple(str(p) for p in row.provider_denylist or ()),
        prefer_cheapest=row.prefer_cheapest,
    )


class _State:
    version: int | None = None
    policies: dict[int, AccountPolicy] = {}
    checked_at: float = 0.0


_state = _State()


def mark_policies_changed() -> None:
    try:
        cache.incr(VERSION_CACHE_KEY)
    except ValueError:
        cache.set(VERSION_CACHE_KEY, 1, timeout=None)
    _state.checked_at = 0.0


def save_policy(*, account_id: int, **fields: object) -> AccountRoutingPolicy:
    """Create or update an account's routing defaults; effective on every process within
    CHECK_INTERVAL."""
    row, _ = AccountRoutingPolicy.objects.update_or_create(account_id=account_id, defaults=fields)
    mark_policies_changed()
    return row


POLICY_FIELDS = (
    "preferred_region",
    "prefer_low_carbon",
    "fixed_provider",
    "provider_allowlist",
    "provider_denylist",
    "prefer_cheapest",
)


def update_routing_defaults(
    *, account_id: int, actor: User | None, **fields: object
) -> AccountRoutingPolicy:
    """``save_policy`` for a person (the settings page, the management API): the change and its
    audit entry in one transaction, then every process reloads its copy."""
    with transaction.atomic():
        before = AccountRoutingPolicy.objects.filter(account_id=account_id).first()
        old = {f: getattr(before, f) if before else None for f in fields}
        row, _ = AccountRoutingPolicy.objects.update_or_create(
            account_id=account_id, defaults=fields
        )
        diff = {f: [old[f], fields[f]] for f in fields if old[f] != fields[f]}
        if diff:
            record_audit(
                actor=actor,
                account=account_id,
                action="routing_defaults.update",
                target="",
                changes=diff,
            )
    mark_policies_changed()
    return row


def delete_policy(*, account_id: int) -> None:
    AccountRoutingPolicy.objects.filter(account_id=account_id).delete()
    mark_policies_changed()


def is_fresh(grace: float = 0.0) -> bool:
    """Whether ``get_policy`` would answer from memory, with no cache or database access (or,
    with a ``grace``, whether the copy is at most that far past its interval)."""
    age = time.monotonic() - _state.checked_at
    return _state.version is not None and age < CHECK_INTERVAL + grace


def is_recent() -> bool:
    """Whether the copy is at most STALE_GRACE_S past its interval (``aroute_request`` serves
    it while it is reloaded in the background)."""
    return is_fresh(grace=STALE_GRACE_S)


def refreshed() -> dict[int, AccountPolicy]:
    """The copy, reloaded first when the version check is due and the version moved."""
    if is_fresh():
        return _state.policies
    now = time.monotonic()
    version = int(cache.get(VERSION_CACHE_KEY) or 0)
    _state.checked_at = now
    if version != _state.version:
        _state.policies = {
            row.account_id: _as_policy(row) for row in AccountRoutingPolicy.objects.all()
        }
        _state.version = version
    return _state.policies


def get_policy(account_id: int, *, refresh: bool = True) -> AccountPolicy:
    """The account's policy; with ``refresh=False`` from the copy as it is, even if stale."""
    policies = refreshed() if refresh else _state.policies
    return policies.get(account_id, NO_POLICY)


def reset_policies() -> None:
    _state.version = None
    _state.policies = {}
    _state.checked_at = 0.0
