"""The reservation counts the key's day and month in one statement.

As first written (0004) it inserted the two spend rows (``ON CONFLICT DO NOTHING``), locked
and read each with ``SELECT ... FOR UPDATE`` and then added the hold to both: four statements
on every request, although the rows exist on all but a key's first request of a day or month.
Now one ``UPDATE ... RETURNING`` adds the hold to both rows and returns what they then count;
over a limit, the same statement's change is taken back, as the wallet's is. Only when a row is
missing (a new day or month) is the addition taken back, the rows created, and the addition
made again. Concurrent requests of one key queue on the rows' locks exactly as before, so they
never see each other's provisional additions. The rest is as in 0006 (and 0005's commit).
"""

import importlib

from django.db import migrations

_previous = importlib.import_module("billing.migrations.0006_reserve_checks_the_key")

RESERVE = """
CREATE OR REPLACE FUNCTION lowrouter_reserve(
    p_account bigint, p_key bigint, p_amount bigint, p_day date, p_month date,
    p_day_limit bigint, p_month_limit bigint, p_now timestamptz, p_fingerprint text,
    OUT refused text, OUT hold_id bigint, OUT balance bigint, OUT remaining bigint
) LANGUAGE plpgsql AS $$
DECLARE
    day_used bigint;
    month_used bigint;
    counted int;
    usable boolean;
    fingerprint text;
BEGIN
    -- This transaction's commit does not wait for the WAL flush (see migration 0005).
    PERFORM set_config('synchronous_commit', 'off', true);
    -- 0. The key, as the gateway saw it when it routed this request (see migration 0006).
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
    -- 1. The balance: only matches when the hold fits what other holds left.
    UPDATE billing_wallet SET reserved_micros = reserved_micros + p_amount
     WHERE account_id = p_account AND balance_micros - reserved_micros >= p_amount
     RETURNING balance_micros INTO balance;
    IF NOT FOUND THEN
        SELECT GREATEST(0, balance_micros - reserved_micros) INTO remaining
          FROM billing_wallet WHERE account_id = p_account;
        refused := 'balance';
        remaining := COALESCE(remaining, 0);
        RETURN;
    END IF;
    -- 2. The key's day and month: the hold added to both, and what they then count.
    WITH added AS (
        UPDATE billing_keyspend SET reserved_micros = reserved_micros + p_amount
         WHERE key_id = p_key AND ((period = 'day' AND period_start = p_day)
                                OR (period = 'month' AND period_start = p_month))
         RETURNING period, spent_micros + reserved_micros AS used
    )
    SELECT count(*), max(used) FILTER (WHERE period = 'day'),
           max(used) FILTER (WHERE period = 'month')
      INTO counted, day_used, month_used FROM added;
    IF counted < 2 THEN
        -- A new day or month: take the addition back, create the rows, add it again.
        UPDATE billing_keyspend SET reserved_micros = reserved_micros - p_amount
         WHERE key_id = p_key AND ((period = 'day' AND period_start = p_day)
                                OR (period = 'month' AND period_start = p_month));
        INSERT INTO billing_keyspend (key_id, period, period_start, spent_micros, reserved_micros)
        VALUES (p_key, 'day', p_day, 0, 0), (p_key, 'month', p_month, 0, 0)
        ON CONFLICT (key_id, period, period_start) DO NOTHING;
        WITH added AS (
            UPDATE billing_keyspend SET reserved_micros = reserved_micros + p_amount
             WHERE key_id = p_key AND ((period = 'day' AND period_start = p_day)
                                    OR (period = 'month' AND period_start = p_month))
             RETURNING period, spent_micros + reserved_micros AS used
        )
        SELECT max(used) FILTER (WHERE period = 'day'),
               max(used) FILTER (WHERE period = 'month')
          INTO day_used, month_used FROM added;
    END IF;
    IF day_used > p_day_limit OR month_used > p_month_limit THEN
        -- Refused: take back what this statement added; its transaction nets to nothing.
        UPDATE billing_wallet SET reserved_micros = reserved_micros - p_amount
         WHERE account_id = p_account;
        UPDATE billing_keyspend SET reserved_micros = reserved_micros - p_amount
         WHERE key_id = p_key AND ((period = 'day' AND period_start = p_day)
                                OR (period = 'month' AND period_start = p_month));
        balance := NULL;
        IF day_used > p_day_limit THEN
            refused := 'day';
            remaining := GREATEST(0, p_day_limit - (day_used - p_amount));
        ELSE
            refused := 'month';
            remaining := GREATEST(0, p_month_limit - (month_used - p_amount));
        END IF;
        RETURN;
    END IF;
    -- 3. The hold row, which settlement (or the orphan reaper) deletes.
    INSERT INTO billing_hold (account_id, key_id, amount_micros, day, month, created_at)
    VALUES (p_account, p_key, p_amount, p_day, p_month, p_now)
    RETURNING id INTO hold_id;
END
$$;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(RESERVE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_previous.RESERVE)


class Migration(migrations.Migration):
    dependencies = [("billing", "0009_fewer_indexes_on_request_rows")]
    operations = [migrations.RunPython(forwards, backwards)]
