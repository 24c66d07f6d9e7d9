"""The money core's PostgreSQL functions, one canonical ``.sql`` file each in ``billing/sql/``.

Migrations install a function from its file as the file is when the migration runs, never from
a copy of the text kept in the migration: a fresh database therefore gets today's text from its
first install on. Each install names the digest of the text it was written for. The rule for
changing a function (also at the head of each file):

1. edit its file;
2. add a billing migration with ``install_functions({"<name>": "<digest>"})``, so databases
   migrated before the edit get the new text too. The digest is ``statement_digest(name)`` of
   the edited file; ``tests/billing/test_money_core_functions.py`` prints it when it fails,
   which it does until the newest install of every function names its file's current digest;
3. a changed signature (arguments or OUT columns) also needs the old one dropped in that
   migration, or CREATE OR REPLACE leaves the old function beside the new one.

On SQLite none of this applies: ``billing/spending.py`` runs the same steps as statements.
"""

import hashlib
from pathlib import Path
from typing import Any

from django.db import migrations

SQL_DIR = Path(__file__).resolve().parent / "sql"

# In install order (lowrouter_reserve calls lowrouter_key_fingerprint), with the argument types
# that name each one for DROP FUNCTION.
SIGNATURES = {
    "lowrouter_key_fingerprint": "keys_apikey",
    "lowrouter_reserve": "bigint, bigint, bigint, date, date, bigint, bigint, timestamptz, text",
    "lowrouter_settle": "bigint, bigint, bigint, bigint, date, date, bigint, bigint, bigint, jsonb",
    "lowrouter_ledger_append_only": "",
}
FUNCTIONS = tuple(SIGNATURES)


def function_sql(name: str) -> str:
    """The file's text: a comment header, then one CREATE OR REPLACE FUNCTION statement."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def statement_digest(name: str) -> str:
    """The digest of the file's statement (its comment header may change freely)."""
    text = function_sql(name)
    statement = text[text.index("\nCREATE OR REPLACE FUNCTION") + 1 :]
    return hashlib.sha256(statement.encode()).hexdigest()[:16]


class InstallFunctions(migrations.RunPython):
    """Installs the named functions from their files (PostgreSQL only). ``digests`` records the
    text each install was written for (see the module's rule). Reversed, it drops them when
    ``drop_on_reverse`` (the migration that first created them), else does nothing: the text
    that was there before is gone with the old file."""

    def __init__(self, digests: dict[str, str], *, drop_on_reverse: bool = False) -> None:
        unknown = set(digests) - set(FUNCTIONS)
        if unknown:
            raise ValueError(f"no such money-core function: {sorted(unknown)}")
        self.digests = digests
        self.names = [name for name in FUNCTIONS if name in digests]
        reverse = self.drop if drop_on_reverse else migrations.RunPython.noop
        super().__init__(self.install, reverse)

    def install(self, apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        # A fresh database installs today's text from the first migration on, before later
        # migrations add the columns it may name: bodies are checked by use (the tests that
        # call them), not at creation (PostgreSQL would check a LANGUAGE sql body).
        schema_editor.execute("SET LOCAL check_function_bodies = off")
        for name in self.names:
            # No parameters: the text is sent as it is (a ``%`` in it is no placeholder).
            schema_editor.execute(function_sql(name), None)

    def drop(self, apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        for name in reversed(self.names):
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}({SIGNATURES[name]})")


def install_functions(
    digests: dict[str, str], *, drop_on_reverse: bool = False
) -> InstallFunctions:
    return InstallFunctions(digests, drop_on_reverse=drop_on_reverse)
