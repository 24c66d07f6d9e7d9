-- lowrouter_reserve: hold a request's worst-case cost against the account's balance and the
-- key's day and month limits, in one round trip (billing/spending.py, ``reserve_credits``).
--
-- Why it is written this way (each point was measured on the target machine):
--   * Server side at all: on PostgreSQL each statement is a network round trip plus driver
--     work on the gateway's CPU, and the hold's row locks last across all of them.
--   * Its commit does not wait for the WAL flush (synchronous_commit off, for this transaction
--     only). A hold is provisional: the settlement after it commits and flushes the WAL up to
--     and including the hold. Only a PostgreSQL crash between the two loses a hold, and the
--     wallet's matching reserved_micros with it, so the books stay consistent. Saves ~0.4 ms.
--   * Step 0 checks the key itself (enabled, not revoked or expired, account active: else
--     ``key``; fingerprint as routed: else ``stale``), so a key read earlier and cached by the
--     gateway can be trusted; nothing is held and the gateway authenticates afresh.
--   * Step 2 adds the hold to the key's day and month rows in one UPDATE ... RETURNING and
--     takes it back when over a limit; only a key's first request of a day or month creates
--     the rows. Concurrent requests of one key queue on the rows' locks, so none sees
--     another's provisional addition.
--
-- This file is the function's one source: billing migrations install whatever the file
-- holds when they run (billing/dbfunctions.py), so a fresh database gets today's text. To change
-- the function:
--   1. edit this file;
--   2. add a billing migration running install_functions({"lowrouter_reserve": "<digest>"}),
--      so databases migrated before the edit get it too. The digest (of the statement below,
--      not of these comments) is printed by tests/billing/test_money_core_functions.py, which
--      fails until the newest install of the function names this file's current digest;
--   3. if the signature (arguments or OUT columns) changes, drop the old one in that migration,
--      or CREATE OR REPLACE leaves it beside the new one.
-- Keep the file to this header and the one CREATE OR REPLACE FUNCTION statement.
-- On SQLite the same steps run as statements (billing/spending.py,
-- reserve_by_statements); keep the two step for step alike:
-- tests/billing/test_money_core_scenarios.py runs both on PostgreSQL.

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
    -- This transaction's commit does not wait for the WAL flush (see the header).
    PERFORM set_config('synchronous_commit', 'off', true);
    -- 0. The key, as the gateway saw it when it routed this request (see the header).
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
