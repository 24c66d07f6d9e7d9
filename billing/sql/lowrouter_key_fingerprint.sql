-- lowrouter_key_fingerprint(k): a digest of the key columns routing and limits read.
--
-- The gateway keeps recently authenticated keys in memory (keys/auth.py) and skips the
-- authentication query for them on PostgreSQL. lowrouter_reserve compares this digest of the
-- key row as it is now with the one the gateway routed with, and refuses the hold as ``stale``
-- when they differ, so an edit applies to the very next request however the row was changed.
--
-- This file is the function's one source: billing/dbfunctions.py reads it, and billing
-- migrations install whatever the file holds when they run. Hence the rule:
--   * To change the function, edit this file AND add a billing migration that runs
--     install_functions("lowrouter_key_fingerprint"), so that databases migrated before
--     the edit get it too. tests/billing/test_money_core_functions.py compares the installed
--     function (pg_get_functiondef) with this file: an edit without its migration fails CI.
--   * A fresh database runs every install with today's text; that is why the file holds a
--     single CREATE OR REPLACE FUNCTION and nothing that depends on when it runs.
--   * Changing the signature (arguments or OUT columns) makes CREATE OR REPLACE add a second
--     function beside the old one: the migration must drop the old signature first.

CREATE OR REPLACE FUNCTION lowrouter_key_fingerprint(k keys_apikey) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT md5(row(k.account_id, k.name, k.region, k.models, k.daily_credit_limit,
                   k.monthly_credit_limit, k.expires_at, k.prefer_low_carbon)::text)
$$;
