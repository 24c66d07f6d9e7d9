"""Reserve and settle as PostgreSQL functions: one round trip each on the request path.

``billing/spending.py`` runs the same steps as separate statements on SQLite, where a statement
costs no round trip. On PostgreSQL each statement is a network round trip plus driver work on the
gateway's CPU, and the reservation's row locks are held across all of them, so the steps run
server side instead. The two forms are kept step for step alike, and the money tests run against
both databases. Changing either function is a new migration with ``CREATE OR REPLACE``.
"""

from django.db import migrations

RESERVE = """
CREATE OR REPLACE FUNCTION lowrouter_reserve(
    p_account bigint, p_key bigint, p_amount bigint, p_day date, p_month date,
    p_day_limit bigint, p_month_limit bigint, p_now timestamptz,
    OUT refused text, OUT hold_id bigint, OUT balance bigint, OUT remaining bigint
) LANGUAGE plpgsql AS $$
DECLARE
    day_used bigint;
    month_used bigint;
BEGIN
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
    -- 2. The key's day and month, locked, then checked against their limits.
    INSERT INTO billing_keyspend (key_id, period, period_start, spent_micros, reserved_micros)
    VALUES (p_key, 'day', p_day, 0, 0), (p_key, 'month', p_month, 0, 0)
    ON CONFLICT (key_id, period, period_start) DO NOTHING;
    SELECT spent_micros + reserved_micros INTO day_used FROM billing_keyspend
     WHERE key_id = p_key AND period = 'day' AND period_start = p_day FOR UPDATE;
    SELECT spent_micros + reserved_micros INTO month_used FROM billing_keyspend
     WHERE key_id = p_key AND period = 'month' AND period_start = p_month FOR UPDATE;
    IF day_used + p_amount > p_day_limit OR month_used + p_amount > p_month_limit THEN
        -- Refused: give the balance back; the statement's transaction nets to nothing.
        UPDATE billing_wallet SET reserved_micros = reserved_micros - p_amount
         WHERE account_id = p_account;
        balance := NULL;
        IF day_used + p_amount > p_day_limit THEN
            refused := 'day';
            remaining := GREATEST(0, p_day_limit - day_used);
        ELSE
            refused := 'month';
            remaining := GREATEST(0, p_month_limit - month_used);
        END IF;
        RETURN;
    END IF;
    UPDATE billing_keyspend SET reserved_micros = reserved_micros + p_amount
     WHERE key_id = p_key AND ((period = 'day' AND period_start = p_day)
                            OR (period = 'month' AND period_start = p_month));
    -- 3. The hold row, which settlement (or the orphan reaper) deletes.
    INSERT INTO billing_hold (account_id, key_id, amount_micros, day, month, created_at)
    VALUES (p_account, p_key, p_amount, p_day, p_month, p_now)
    RETURNING id INTO hold_id;
END
$$;
"""

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
    -- The debit never takes credit other open holds were promised; what does not fit stays
    -- on the record as unbilled.
    SELECT balance_micros - (reserved_micros - released) INTO spendable
      FROM billing_wallet WHERE account_id = p_account FOR UPDATE;
    cost := LEAST(p_charge, GREATEST(0, COALESCE(spendable, 0)));
    UPDATE billing_wallet
       SET balance_micros = balance_micros - cost, reserved_micros = reserved_micros - released
     WHERE account_id = p_account
     RETURNING balance_micros INTO balance;
    balance := COALESCE(balance, 0);
    INSERT INTO billing_generation
    SELECT * FROM jsonb_populate_record(
        NULL::billing_generation,
        p_generation || jsonb_build_object('cost_micros', cost, 'unbilled_micros', p_charge - cost)
    );
    IF cost > 0 THEN
        INSERT INTO billing_ledgerentry
            (account_id, kind, amount_micros, created_at, generation_id, reference, reason)
        VALUES (p_account, 'usage', -cost, completed, gen_id, gen_id, '');
    END IF;
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

DROP = """
DROP FUNCTION IF EXISTS lowrouter_reserve(bigint, bigint, bigint, date, date, bigint, bigint,
    timestamptz);
DROP FUNCTION IF EXISTS lowrouter_settle(bigint, bigint, bigint, bigint, date, date, bigint,
    jsonb);
"""


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(RESERVE)
        schema_editor.execute(SETTLE)


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_vat_rates")]
    operations = [migrations.RunPython(create_functions, drop_functions)]
