"""The reservation checks the calling key itself, so a key read earlier can be trusted.

The gateway keeps the keys it authenticated recently in memory (``keys/auth.py``) and skips the
authentication query for them on PostgreSQL. What makes that exact is this check, made in the
same statement that places the hold: the key must still be usable (enabled, not revoked, not
expired, its account active), else the hold is refused as ``key``; and its fingerprint (the
columns routing and limits read, hashed by ``lowrouter_key_fingerprint``) must match the one the
gateway routed with, else it is refused as ``stale`` (callers that have just read the key pass
no fingerprint). Either way nothing is held, and the
gateway authenticates afresh. A revocation or an edit therefore still applies to the very next
request, whichever way the row was changed.
"""

import importlib

from django.db import migrations

_previous = importlib.import_module("billing.migrations.0005_reserve_commits_without_waiting")

FINGERPRINT = """
CREATE OR REPLACE FUNCTION lowrouter_key_fingerprint(k keys_apikey) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT md5(row(k.account_id, k.name, k.region, k.models, k.daily_credit_limit,
                   k.monthly_credit_limit, k.expires_at, k.prefer_low_carbon)::text)
$$;
"""

OLD_SIGNATURE = "p_day_limit bigint, p_month_limit bigint, p_now timestamptz,\n"
NEW_SIGNATURE = "p_day_limit bigint, p_month_limit bigint, p_now timestamptz, p_fingerprint text,\n"
OLD_DECLARE = "    month_used bigint;\nBEGIN\n"
NEW_DECLARE = "    month_used bigint;\n    usable boolean;\n    fingerprint text;\nBEGIN\n"
MARK = "    -- 1. The balance"
KEY_CHECK = """    -- 0. The key, as the gateway saw it when it routed this request.
    SELECT k.enabled AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > p_now)
           AND u.is_active,
           lowrouter_key_fingerprint(k)
      INTO usable, fingerprint
      FROM keys_apikey k JOIN accounts_user u ON u.id = k.account_id
     WHERE k.id = p_key AND k.account_id = p_account;
    IF NOT FOUND OR NOT usable THEN
        refused := 'key';
        remaining := 0;
        RETURN;
    END IF;
    IF p_fingerprint IS NOT NULL AND fingerprint IS DISTINCT FROM p_fingerprint THEN
        refused := 'stale';
        remaining := 0;
        RETURN;
    END IF;
"""
for part in (OLD_SIGNATURE, OLD_DECLARE, MARK):
    assert part in _previous.RESERVE
RESERVE = (
    _previous.RESERVE.replace(OLD_SIGNATURE, NEW_SIGNATURE, 1)
    .replace(OLD_DECLARE, NEW_DECLARE, 1)
    .replace(MARK, KEY_CHECK + MARK, 1)
)

DROP_OLD = (
    "DROP FUNCTION IF EXISTS lowrouter_reserve(bigint, bigint, bigint, date, date, bigint, bigint,"
    " timestamptz);"
)
DROP_NEW = (
    "DROP FUNCTION IF EXISTS lowrouter_reserve(bigint, bigint, bigint, date, date, bigint, bigint,"
    " timestamptz, text); DROP FUNCTION IF EXISTS lowrouter_key_fingerprint(keys_apikey);"
)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_OLD)
        schema_editor.execute(FINGERPRINT)
        schema_editor.execute(RESERVE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_NEW)
        schema_editor.execute(_previous.RESERVE)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_reserve_commits_without_waiting"),
        ("keys", "0001_initial"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
