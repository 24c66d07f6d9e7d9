"""The settlement commits without waiting for its WAL flush, like the reservation (0005).

Waiting for the flush was about 0.8 ms of every answer's latency on the target machine, the
largest single step left on the path of a request made one at a time. What it risks: only a
PostgreSQL crash (not a gateway crash, not a lost connection) can lose commits made in the last
moment before it, at most three ``wal_writer_delay`` periods (600 ms by default). The WAL is
replayed in order, so a lost settlement never leaves half its writes: either its record, ledger
entry, debit and counters all survive or none do. The hold it would have deleted then survives
with the reservation that made it, and the orphan reaper releases it, so the books stay
consistent (every balance equals its ledger) and no budget is overspent; those requests go
unbilled and their records are missing. A settlement is visible to every other session as soon
as it commits, so nothing reads a stale balance or misses a record while PostgreSQL runs.
Payments and every other write keep the server's default.
"""

import importlib

from django.db import migrations

_previous = importlib.import_module("billing.migrations.0007_settle_takes_shared_rows_last")

MARK = "BEGIN\n    -- If the orphan reaper"
NO_FLUSH_WAIT = (
    "BEGIN\n"
    "    -- This transaction's commit does not wait for the WAL flush (see migration 0008).\n"
    "    PERFORM set_config('synchronous_commit', 'off', true);\n"
    "    -- If the orphan reaper"
)
assert MARK in _previous.SETTLE
SETTLE = _previous.SETTLE.replace(MARK, NO_FLUSH_WAIT, 1)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SETTLE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_previous.SETTLE)


class Migration(migrations.Migration):
    dependencies = [("billing", "0007_settle_takes_shared_rows_last")]
    operations = [migrations.RunPython(forwards, backwards)]
