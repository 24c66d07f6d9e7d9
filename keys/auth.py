"""Authenticate a bearer token to a key and its account, in one indexed query (from a worker
thread with ``authenticate``, or on the event loop with ``aauthenticate`` on PostgreSQL)."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from types import SimpleNamespace

from django.utils import timezone

from accounts.models import User
from keys.models import ApiKey
from keys.tokens import digest_token, looks_like_token
from lowrouter.asyncdb import fetch_one_on_loop, statements_on_loop
from lowrouter.sql import convert_row, fetch_one, table


class AuthError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class KeyContext:
    """What the request path needs to know about the calling key, read once per request."""

    key_id: int
    key_name: str
    account_id: int
    models: tuple[str, ...]
    region: str
    daily_credit_limit: Decimal | None
    monthly_credit_limit: Decimal | None
    expires_at: datetime | None
    prefer_low_carbon: bool
    # PostgreSQL: the row's lowrouter_key_fingerprint, which the reservation compares with the
    # row as it is then (billing/sql/lowrouter_reserve.sql). Empty on SQLite.
    fingerprint: str = ""

    def allows_model(self, model_id: str) -> bool:
        return not self.models or model_id in self.models


_AUTH_COLUMNS = (
    "id",
    "name",
    "account_id",
    "models",
    "region",
    "daily_credit_limit",
    "monthly_credit_limit",
    "expires_at",
    "prefer_low_carbon",
    "enabled",
    "revoked_at",
)
_AUTH_SQL = (
    "SELECT "
    + ", ".join(f"k.{c}" for c in _AUTH_COLUMNS)
    + ", u.is_active{fingerprint} FROM {key} k JOIN {user} u ON u.id = k.account_id"
    " WHERE k.digest = %s"
)

# Keys this process authenticated recently, by digest, for the event-loop path on PostgreSQL:
# a hit skips the authentication query, and the reservation then checks the key's row as it is
# (usable, same fingerprint), so nothing read here is trusted beyond that statement.
_recent: dict[str, "KeyContext"] = {}
RECENT_KEYS_MAX = 10_000


@cache
def _auth_sql() -> str:
    return _AUTH_SQL.format(
        key=table(ApiKey),
        user=table(User),
        fingerprint=", lowrouter_key_fingerprint(k)" if statements_on_loop() else "",
    )


def parse_bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthError(
            "missing_api_key",
            "No API key provided. Send 'Authorization: Bearer lr-sk-...'.",
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not looks_like_token(token):
        raise AuthError(
            "invalid_api_key",
            "Malformed API key. Expected 'Authorization: Bearer lr-sk-...'.",
        )
    return token


def authenticate(authorization: str | None, *, now: datetime | None = None) -> KeyContext:
    """Resolve the Authorization header to a usable key, or raise AuthError.

    Looked up in the database on every request (one indexed query): an edit or a revocation is
    therefore effective on the very next request in every process, with nothing to invalidate.
    """
    digest = digest_token(parse_bearer(authorization))
    # Plain SQL with the ORM's own value converters: this runs on every request, and the
    # ORM's query compilation cost more CPU than the query.
    return _key_context(fetch_one(_auth_sql(), [digest]), now)


async def aauthenticate(
    authorization: str | None, *, now: datetime | None = None, recent: bool = False
) -> KeyContext:
    """``authenticate`` from the event loop, PostgreSQL only (``statements_on_loop``). With
    ``recent``, a key this process authenticated before is returned without a query: only for
    a caller whose next statement is the reservation, which checks the key's row itself."""
    digest = digest_token(parse_bearer(authorization))
    if recent:
        key = _recent.get(digest)
        if key is not None and (key.expires_at is None or key.expires_at > (now or timezone.now())):
            return key
    key = _key_context(await fetch_one_on_loop(_auth_sql(), [digest]), now)
    if len(_recent) >= RECENT_KEYS_MAX:
        _recent.clear()
    _recent[digest] = key
    return key


def forget_recent_key(authorization: str | None) -> None:
    """Drop the remembered copy of this key (the reservation found its row changed)."""
    _recent.pop(digest_token(parse_bearer(authorization)), None)


def _key_context(row: tuple | None, now: datetime | None) -> KeyContext:
    key = None
    fingerprint = ""
    if row is not None:
        columns = len(_AUTH_COLUMNS)
        key = SimpleNamespace(**convert_row(ApiKey, _AUTH_COLUMNS, row[:columns]))
        key.account_is_active = bool(row[columns])
        fingerprint = row[columns + 1] if len(row) > columns + 1 else ""
    if key is None or key.revoked_at is not None or not key.account_is_active:
        raise AuthError("invalid_api_key", "Invalid API key.")
    if not key.enabled:
        raise AuthError("key_disabled", f"API key '{key.name}' is disabled.")
    now = now or timezone.now()
    if key.expires_at is not None and key.expires_at <= now:
        raise AuthError(
            "key_expired", f"API key '{key.name}' expired at {key.expires_at.isoformat()}."
        )
    return KeyContext(
        key_id=key.id,
        key_name=key.name,
        account_id=key.account_id,
        models=tuple(key.models or ()),
        region=key.region,
        daily_credit_limit=key.daily_credit_limit,
        monthly_credit_limit=key.monthly_credit_limit,
        expires_at=key.expires_at,
        prefer_low_carbon=key.prefer_low_carbon,
        fingerprint=fingerprint,
    )
