-- lowrouter_settle: record a finished request and pay for it, in one round trip
-- (billing/spending.py, ``settle_generation``): release its hold, write the generation record
-- and its ledger debit, move the wallet and the key's spend, add to the daily aggregate.
--
-- Why it is written this way (each point was measured on the target machine):
--   * The shared rows (the wallet, the key's spend, the daily aggregate: what every request of
--     an account or key touches) are locked last, so they are held for a few updates, one
--     ledger insert and the commit, not for the generation record's insert (at 16 concurrent
--     requests of one account, locking the wallet first left about 6 of the 16 waiting on row
--     locks, when the commit still waited for its WAL flush).
--   * The ledger is append-only: its row is written once, at the amount the wallet paid. What
--     the wallet can pay is read before the record is written, without a lock; the wallet's
--     UPDATE then only matches if that still holds. No other writer takes credit a hold
--     promised, so it fails only when the cost needs free credit beyond this request's hold
--     (an upstream that ignored the bound, a hold the reaper gave back) and a concurrent
--     reservation, overrun or operator took it in between: then the wallet, now locked, is
--     read again and the generation record (never the ledger) is corrected before the commit.
--     The ledger row comes after the wallet's UPDATE: the one insert under the wallet's lock.
--   * A charge beyond the released hold (an upstream that overran the bound it was sent) is
--     capped at what the key's day and month limits leave (p_day_limit, p_month_limit: the
--     limits the hold was checked against) as well as at the wallet; the rest is the record's
--     unbilled_micros. That path locks the wallet then the key's spend, as the reservation does.
--   * Its commit does not wait for the WAL flush (~0.8 ms per answer). Only a PostgreSQL crash
--     can lose the last moment's commits (at most three wal_writer_delay periods); the WAL is
--     replayed in order, so a settlement survives whole or not at all, and the hold it would
--     have deleted survives with its reservation for the orphan reaper to release.
--
-- This file is the function's one source: billing migrations install whatever the file
-- holds when they run (billing/dbfunctions.py), so a fresh database gets today's text. To change
-- the function:
--   1. edit this file;
--   2. add a billing migration running install_functions({"lowrouter_settle": "<digest>"}),
--      so databases migrated before the edit get it too. The digest (of the statement below,
--      not of these comments) is printed by tests/billing/test_money_core_functions.py, which
--      fails until the newest install of the function names this file's current digest;
--   3. if the signature (arguments or OUT columns) changes, drop the old one in that migration,
--      or CREATE OR REPLACE leaves it beside the new one.
-- Keep the file to this header and the one CREATE OR REPLACE FUNCTION statement.
-- On SQLite the same steps run as statements (billing/spending.py, settle_by_statements); keep the
-- two step for step alike: tests/billing/test_money_core_scenarios.py runs both on PostgreSQL.

CREATE OR REPLACE FUNCTION lowrouter_settle(
    p_hold bigint, p_account bigint, p_key bigint, p_amount bigint, p_day date, p_month date,
    p_day_limit bigint, p_month_limit bigint, p_charge bigint, p_generation jsonb,
    OUT cost bigint, OUT balance bigint
) LANGUAGE plpgsql AS $$
DECLARE
    released bigint := 0;
    spendable bigint;
    day_used bigint;
    month_used bigint;
    gen_id text := p_generation->>'id';
    completed timestamptz := (p_generation->>'completed_at')::timestamptz;
BEGIN
    -- This transaction's commit does not wait for the WAL flush (see the header).
    PERFORM set_config('synchronous_commit', 'off', true);
    -- If the orphan reaper already deleted this hold, its counters were given back already.
    DELETE FROM billing_hold WHERE id = p_hold;
    IF FOUND THEN
        released := p_amount;
    END IF;
    -- The debit never takes credit other open holds were promised, so the balance never goes
    -- below zero; what does not fit stays on the record as unbilled.
    IF p_charge > released THEN
        -- Beyond the hold (an upstream past its bound, or a hold the reaper took back), which
        -- is rare: the key pays only what its day and month limits leave after every other
        -- open hold. Locked in the reservation's order, the wallet then the key's spend, so
        -- this path cannot deadlock with a reservation.
        SELECT balance_micros - (reserved_micros - released) INTO spendable
          FROM billing_wallet WHERE account_id = p_account FOR UPDATE;
        SELECT max(used) FILTER (WHERE period = 'day'), max(used) FILTER (WHERE period = 'month')
          INTO day_used, month_used
          FROM (SELECT period, spent_micros + reserved_micros AS used FROM billing_keyspend
                 WHERE key_id = p_key AND ((period = 'day' AND period_start = p_day)
                                        OR (period = 'month' AND period_start = p_month))
                   FOR UPDATE) AS spend;
        cost := LEAST(
            p_charge,
            GREATEST(0, COALESCE(spendable, 0)),
            GREATEST(0, p_day_limit - (COALESCE(day_used, 0) - released)),
            GREATEST(0, p_month_limit - (COALESCE(month_used, 0) - released))
        );
    ELSE
        -- Within the hold: what the wallet can pay, read without a lock (checked again by the
        -- wallet's UPDATE below).
        SELECT balance_micros - (reserved_micros - released) INTO spendable
          FROM billing_wallet WHERE account_id = p_account;
        cost := LEAST(p_charge, GREATEST(0, COALESCE(spendable, 0)));
    END IF;
    INSERT INTO billing_generation
    SELECT * FROM jsonb_populate_record(
        NULL::billing_generation,
        p_generation || jsonb_build_object('cost_micros', cost, 'unbilled_micros', p_charge - cost)
    );
    -- The shared rows, last: locked from here to the commit only.
    UPDATE billing_wallet
       SET balance_micros = balance_micros - cost, reserved_micros = reserved_micros - released
     WHERE account_id = p_account AND balance_micros - (reserved_micros - released) >= cost
     RETURNING balance_micros INTO balance;
    IF NOT FOUND THEN
        -- Another writer took free credit since the read (or there is no wallet): pay what
        -- is left now that the wallet is locked, and correct the record to match.
        SELECT balance_micros - (reserved_micros - released) INTO spendable
          FROM billing_wallet WHERE account_id = p_account FOR UPDATE;
        cost := LEAST(cost, GREATEST(0, COALESCE(spendable, 0)));
        UPDATE billing_generation SET cost_micros = cost, unbilled_micros = p_charge - cost
         WHERE id = gen_id;
        UPDATE billing_wallet
           SET balance_micros = balance_micros - cost, reserved_micros = reserved_micros - released
         WHERE account_id = p_account
         RETURNING balance_micros INTO balance;
    END IF;
    balance := COALESCE(balance, 0);
    -- Written once, at what was paid: the ledger is append-only.
    IF cost > 0 THEN
        INSERT INTO billing_ledgerentry
            (account_id, kind, amount_micros, created_at, generation_id, reference, reason)
        VALUES (p_account, 'usage', -cost, completed, gen_id, gen_id, '');
    END IF;
    UPDATE billing_keyspend
       SET reserved_micros = reserved_micros - released, spent_micros = spent_micros + cost
     WHERE key_id = p_key AND ((period = 'day' AND period_start = p_day)
                            OR (period = 'month' AND period_start = p_month));
    INSERT INTO billing_dailyusage AS u (account_id, day, model, key_id, provider, region,
        requests, prompt_tokens, completion_tokens, cost_micros, energy_wh, carbon_g)
    VALUES (
        p_account,
        ((p_generation->>'created_at')::timestamptz AT TIME ZONE 'UTC')::date,
        COALESCE(NULLIF(p_generation->>'resolved_model', ''), p_generation->>'requested_model'),
        p_key,
        p_generation->>'provider',
        p_generation->>'region',
        1,
        (p_generation->>'prompt_tokens')::bigint,
        (p_generation->>'completion_tokens')::bigint,
        cost,
        COALESCE((p_generation->>'energy_wh')::float8, 0),
        COALESCE((p_generation->>'carbon_g')::float8, 0)
    )
    ON CONFLICT (account_id, day, model, key_id, provider, region) DO UPDATE SET
        requests = u.requests + 1,
        prompt_tokens = u.prompt_tokens + excluded.prompt_tokens,
        completion_tokens = u.completion_tokens + excluded.completion_tokens,
        cost_micros = u.cost_micros + excluded.cost_micros,
        energy_wh = u.energy_wh + excluded.energy_wh,
        carbon_g = u.carbon_g + excluded.carbon_g;
END
$$;
