-- lowrouter_ledger_append_only(): the trigger that keeps billing_ledgerentry append-only.
--
-- A ledger row is written once and never changed or deleted: a balance equals the sum of its
-- entries, and a correction is a new entry. The two links that may still change are set to
-- NULL when what they point to goes (Django's SET_NULL): generation_id, when old usage records
-- are purged, and actor_id, when an operator's user is deleted. Anything else is refused.
-- (TRUNCATE, which only the test suite's flush runs, does not fire row triggers.)
--
-- This file is the function's one source: billing migrations install whatever the file
-- holds when they run (billing/dbfunctions.py), so a fresh database gets today's text. To change
-- the function:
--   1. edit this file;
--   2. add a billing migration running
--      install_functions({"lowrouter_ledger_append_only": "<digest>"}),
--      so databases migrated before the edit get it too. The digest (of the statement below,
--      not of these comments) is printed by tests/billing/test_money_core_functions.py, which
--      fails until the newest install of the function names this file's current digest;
--   3. if the signature (arguments or OUT columns) changes, drop the old one in that migration,
--      or CREATE OR REPLACE leaves it beside the new one.
-- Keep the file to this header and the one CREATE OR REPLACE FUNCTION statement.

CREATE OR REPLACE FUNCTION lowrouter_ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'billing_ledgerentry is append-only: entry % cannot be deleted', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.id, NEW.account_id, NEW.kind, NEW.amount_micros, NEW.created_at, NEW.reference,
        NEW.reason)
       IS DISTINCT FROM
       (OLD.id, OLD.account_id, OLD.kind, OLD.amount_micros, OLD.created_at, OLD.reference,
        OLD.reason)
       OR (NEW.generation_id IS DISTINCT FROM OLD.generation_id AND NEW.generation_id IS NOT NULL)
       OR (NEW.actor_id IS DISTINCT FROM OLD.actor_id AND NEW.actor_id IS NOT NULL) THEN
        RAISE EXCEPTION 'billing_ledgerentry is append-only: entry % cannot be changed', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END
$$;
