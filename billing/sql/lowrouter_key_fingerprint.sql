-- lowrouter_key_fingerprint(k): a digest of the key columns routing and limits read.
--
-- The gateway keeps recently authenticated keys in memory (keys/auth.py) and skips the
-- authentication query for them on PostgreSQL. lowrouter_reserve compares this digest of the
-- key row as it is now with the one the gateway routed with, and refuses the hold as ``stale``
-- when they differ, so an edit applies to the very next request however the row was changed.
--
-- This file is the function's one source: billing migrations install whatever the file
-- holds when they run (billing/dbfunctions.py), so a fresh database gets today's text. To change
-- the function:
--   1. edit this file;
--   2. add a billing migration running
--      install_functions({"lowrouter_key_fingerprint": "<digest>"}),
--      so databases migrated before the edit get it too. The digest (of the statement below,
--      not of these comments) is printed by tests/billing/test_money_core_functions.py, which
--      fails until the newest install of the function names this file's current digest;
--   3. if the signature (arguments or OUT columns) changes, drop the old one in that migration,
--      or CREATE OR REPLACE leaves it beside the new one.
-- Keep the file to this header and the one CREATE OR REPLACE FUNCTION statement.

CREATE OR REPLACE FUNCTION lowrouter_key_fingerprint(k keys_apikey) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT md5(row(k.account_id, k.name, k.region, k.models, k.daily_credit_limit,
                   k.monthly_credit_limit, k.expires_at, k.prefer_low_carbon)::text)
$$;
