"""Settlement never charges a key past its limits, even for output beyond the hold.

Until now ``lowrouter_settle`` capped a charge only by what the wallet could pay without taking
other holds' credit, so an upstream that produced more than the bound it was sent (or a hold the
reaper had already taken back) could push a key's day or month spend far past its limit. The
function now takes the two limits the hold was checked against (``p_day_limit``,
``p_month_limit``, micros, 2^62 for none) and, when the charge is larger than the hold it
releases, locks the key's two spend rows and caps the charge at what each limit leaves after
every other open hold. Within a hold still held the cap cannot bite (the reservation checked
that the hold fits), so that case reads nothing more. What the caps leave out is the
generation's ``unbilled_micros``. Everything else is as in 0007 and 0008 (shared rows last,
the commit without waiting for the WAL flush).

This migration carries the complete function text, not a patch of an earlier one;
``billing/spending.py`` (``_settle_in_statements``) runs the same steps on SQLite.
"""

import importlib

from django.db import migrations

_previous = importlib.import_module("billing.migrations.0008_settle_commits_without_waiting")

SETTLE = """
CREATE OR REPLACE FUNCTION lowrouter_settle(
    p_hold bigint, p_account bigint, p_key bigint, p_amount bigint, p_day date, p_month date,
    p_day_limit bigint, p_month_limit bigint, p_charge bigint, p_generation jsonb,
    OUT cost bigint, OUT balance bigint
) LANGUAGE plpgsql AS $$
DECLARE
    released bigint := 0;
    payable bigint;
    day_used bigint;
    month_used bigint;
    gen_id text := p_generation->>'id';
    completed timestamptz := (p_generation->>'completed_at')::timestamptz;
BEGIN
    -- This transaction's commit does not wait for the WAL flush (see migration 0008).
    PERFORM set_config('synchronous_commit', 'off', true);
    -- If the orphan reaper already deleted this hold, its counters were given back already.
    DELETE FROM billing_hold WHERE id = p_hold;
    IF FOUND THEN
        released := p_amount;
    END IF;
    -- Written at the charge asked for, which the hold nearly always covers; corrected below,
    -- before anything is committed, when the wallet or the key cannot pay it all.
    cost := p_charge;
    INSERT INTO billing_generation
    SELECT * FROM jsonb_populate_record(
        NULL::billing_generation,
        p_generation || jsonb_build_object('cost_micros', cost, 'unbilled_micros', 0)
    );
    IF cost > 0 THEN
        INSERT INTO billing_ledgerentry
            (account_id, kind, amount_micros, created_at, generation_id, reference, reason)
        VALUES (p_account, 'usage', -cost, completed, gen_id, gen_id, '');
    END IF;
    -- The shared rows, last: locked from here to the commit only (wallet, then the key's spend,
    -- the order the reservation takes them in).
    -- The debit never takes credit other open holds were promised, so the balance never goes
    -- below zero.
    SELECT GREATEST(0, balance_micros - (reserved_micros - released)) INTO payable
      FROM billing_wallet WHERE account_id = p_account FOR UPDATE;
    payable := COALESCE(payable, 0);
    IF p_charge > released THEN
        -- Beyond the hold (an upstream past its bound, or a hold the reaper took back): the key
        -- pays only what its limits leave after every other open hold.
        SELECT max(used) FILTER (WHERE period = 'day'), max(used) FILTER (WHERE period = 'month')
          INTO day_used, month_used
          FROM (SELECT period, spent_micros + reserved_micros AS used FROM billing_keyspend
                 WHERE key_id = p_key AND ((period = 'day' AND period_start = p_day)
                                        OR (period = 'month' AND period_start = p_month))
                   FOR UPDATE) AS spend;
        payable := LEAST(
            payable,
            GREATEST(0, p_day_limit - (COALESCE(day_used, 0) - released)),
            GREATEST(0, p_month_limit - (COALESCE(month_used, 0) - released))
        );
    END IF;
    IF cost > payable THEN
        cost := payable;
        UPDATE billing_generation SET cost_micros = cost, unbilled_micros = p_charge - cost
         WHERE id = gen_id;
        IF cost > 0 THEN
            UPDATE billing_ledgerentry SET amount_micros = -cost WHERE generation_id = gen_id;
        ELSE
            DELETE FROM billing_ledgerentry WHERE generation_id = gen_id;
        END IF;
    END IF;
    UPDATE billing_wallet
       SET balance_micros = balance_micros - cost, reserved_micros = reserved_micros - released
     WHERE account_id = p_account
     RETURNING balance_micros INTO balance;
    balance := COALESCE(balance, 0);
    UPDATE billing_keyspend
       SET reserved_micros = reserved_micros - released, spent_micros = spent_micros + cost
     WHERE key_id = p_key AND ((period = 'day' AND period_start = p_day)
                            OR (period = 'month' AND period_start = p_month));
    INSERT INTO billing_dailyusage AS u (account_id, day, model, requests, prompt_tokens,
        completion_tokens, cost_micros, energy_wh, carbon_g)
    VALUES (
        p_account,
        ((p_generation->>'created_at')::timestamptz AT TIME ZONE 'UTC')::date,
        COALESCE(NULLIF(p_generation->>'resolved_model', ''), p_generation->>'requested_model'),
        1,
        (p_generation->>'prompt_tokens')::bigint,
        (p_generation->>'completion_tokens')::bigint,
        cost,
        COALESCE((p_generation->>'energy_wh')::float8, 0),
        COALESCE((p_generation->>'carbon_g')::float8, 0)
    )
    ON CONFLICT (account_id, day, model) DO UPDATE SET
        requests = u.requests + 1,
        prompt_tokens = u.prompt_tokens + excluded.prompt_tokens,
        completion_tokens = u.completion_tokens + excluded.completion_tokens,
        cost_micros = u.cost_micros + excluded.cost_micros,
        energy_wh = u.energy_wh + excluded.energy_wh,
        carbon_g = u.carbon_g + excluded.carbon_g;
END
$$;
"""

DROP_OLD = (
    "DROP FUNCTION IF EXISTS lowrouter_settle(bigint, bigint, bigint, bigint, date, date, bigint,"
    " jsonb);"
)
DROP_NEW = (
    "DROP FUNCTION IF EXISTS lowrouter_settle(bigint, bigint, bigint, bigint, date, date, bigint,"
    " bigint, bigint, jsonb);"
)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_OLD)
        schema_editor.execute(SETTLE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_NEW)
        schema_editor.execute(_previous.SETTLE)


class Migration(migrations.Migration):
    dependencies = [("billing", "0011_refund_status")]
    operations = [migrations.RunPython(forwards, backwards)]
