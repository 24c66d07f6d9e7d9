"""Settlement touches the rows every request of an account or key shares last.

A row lock lasts until the transaction ends, and a settlement's commit waits for its WAL flush
(about 0.8 ms on the target machine). In ``lowrouter_settle`` as first written, the wallet row
was locked by the second statement, so every request of one account queued behind the whole
of another's settlement: the record's inserts, the aggregates and the flush (sampled at 16
concurrent requests of one account: about 6 of the 16 were waiting on row locks). Now the
generation and its ledger entry are written first, at the charge asked for, and the shared
rows (the wallet, the key's spend, the daily aggregate) come last, held for those updates and
the commit only. When the wallet cannot pay the whole charge (a hold the reaper took back, an
operator's debit, an upstream that ignored the bound), the two new rows are corrected before
the commit. The results are the same in every case (tests/billing/test_spending_steps.py runs
them on both forms).
"""

import importlib

from django.db import migrations

_previous = importlib.import_module("billing.migrations.0004_spending_functions")

SETTLE = """
CREATE OR REPLACE FUNCTION lowrouter_settle(
    p_hold bigint, p_account bigint, p_key bigint, p_amount bigint, p_day date, p_month date,
    p_charge bigint, p_generation jsonb,
    OUT cost bigint, OUT balance bigint
) LANGUAGE plpgsql AS $$
DECLARE
    released bigint := 0;
    spendable bigint;
    gen_id text := p_generation->>'id';
    completed timestamptz := (p_generation->>'completed_at')::timestamptz;
BEGIN
    -- If the orphan reaper already deleted this hold, its counters were given back already.
    DELETE FROM billing_hold WHERE id = p_hold;
    IF FOUND THEN
        released := p_amount;
    END IF;
    -- Written at the charge asked for, which the hold nearly always covers; corrected below,
    -- before anything is committed, when the wallet cannot pay it all.
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
    -- The shared rows, last: locked from here to the commit only.
    -- The debit never takes credit other open holds were promised; what does not fit stays on
    -- the record as unbilled.
    SELECT balance_micros - (reserved_micros - released) INTO spendable
      FROM billing_wallet WHERE account_id = p_account FOR UPDATE;
    IF cost > GREATEST(0, COALESCE(spendable, 0)) THEN
        cost := GREATEST(0, COALESCE(spendable, 0));
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


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SETTLE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_previous.SETTLE)


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_reserve_checks_the_key")]
    operations = [migrations.RunPython(forwards, backwards)]
