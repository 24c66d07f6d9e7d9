"""The money core's PostgreSQL functions, one canonical ``.sql`` file each in ``billing/sql/``.

Migrations install a function from its file as the file is when the migration runs, never from
a copy of the text kept in the migration. So the rule for changing one (also at the head of
each file): edit the file, and add a billing migration whose operation is
``install_functions("<name>")``; databases migrated before the edit then get the new text, and
a fresh database gets it from its first install on. ``tests/billing/test_money_core_functions.py``
compares each installed function with its file, which fails an edit made without the migration.
A changed signature needs the old one dropped first (CREATE OR REPLACE would add an overload).
On SQLite none of this applies: ``billing/spending.py`` runs the same steps as statements.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import migrations

SQL_DIR = Path(__file__).resolve().parent / "sql"

# In install order (lowrouter_reserve calls lowrouter_key_fingerprint), with the argument types
# that name each one for DROP FUNCTION.
FUNCTIONS = ("lowrouter_key_fingerprint", "lowrouter_reserve", "lowrouter_settle")
SIGNATURES = {
    "lowrouter_key_fingerprint": "keys_apikey",
    "lowrouter_reserve": "bigint, bigint, bigint, date, date, bigint, bigint, timestamptz, text",
    "lowrouter_settle": "bigint, bigint, bigint, bigint, date, date, bigint, jsonb",
}


def function_sql(name: str) -> str:
    """The file's text: a comment header, then one CREATE OR REPLACE FUNCTION statement."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def install_functions(*names: str, drop_on_reverse: bool = False) -> migrations.RunPython:
    """A migration operation that installs the named functions from their files (PostgreSQL
    only). Reversed, it drops them when ``drop_on_reverse`` (the migration that first created
    them), else does nothing: the text that was there before is gone with the old file."""
    unknown = set(names) - set(FUNCTIONS)
    if unknown:
        raise ValueError(f"no such money-core function: {sorted(unknown)}")
    ordered = [name for name in FUNCTIONS if name in names]

    def install(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        # A fresh database installs today's text from the first migration on, before later
        # migrations add the columns it may name: the bodies are checked by the last install
        # and by the tests that call them, not at creation (a LANGUAGE sql body would be).
        schema_editor.execute("SET LOCAL check_function_bodies = off")
        for name in ordered:
            schema_editor.execute(function_sql(name))

    def drop(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        for name in reversed(ordered):
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}({SIGNATURES[name]})")

    reverse: Callable = drop if drop_on_reverse else migrations.RunPython.noop
    return migrations.RunPython(install, reverse)
