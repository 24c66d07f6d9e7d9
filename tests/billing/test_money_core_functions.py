"""The money core's PostgreSQL functions in the database are exactly their files in billing/sql/.

Two checks. Every database: the newest migration installing each function names the digest of
the file's current statement, so an edited file without the migration that re-installs it on
databases migrated earlier fails (on a fresh test database the text alone could not tell).
PostgreSQL: each file is installed into a scratch schema and PostgreSQL's own rendering of it
(``pg_get_functiondef``) is compared with that of the function the migrations installed.
"""

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from billing.dbfunctions import FUNCTIONS, InstallFunctions, function_sql, statement_digest
from tests.conftest import needs_postgres

SCRATCH = "money_core_file_check"


def functiondef(schema: str, name: str) -> list[str]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = %s AND p.proname = %s",
            [schema, name],
        )
        return [row[0].replace(f"FUNCTION {schema}.", "FUNCTION ", 1) for row in cur.fetchall()]


def newest_installed_digests() -> dict[str, tuple[str, str]]:
    """Per function, the digest named by the last migration (in applying order) installing it."""
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    newest = {}
    for key in graph.forwards_plan(graph.leaf_nodes("billing")[0]):
        if key[0] != "billing":
            continue
        for operation in graph.nodes[key].operations:
            if isinstance(operation, InstallFunctions):
                for name, digest in operation.digests.items():
                    newest[name] = (digest, key[1])
    return newest


def test_every_function_file_is_installed_by_a_migration_naming_its_current_text() -> None:
    newest = newest_installed_digests()
    assert set(newest) == set(FUNCTIONS)
    for name in FUNCTIONS:
        digest, migration = newest[name]
        assert digest == statement_digest(name), (
            f"billing/sql/{name}.sql changed after migration {migration} installed it: add a "
            f'billing migration with install_functions({{"{name}": "{statement_digest(name)}"}})'
        )


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.django_db
@needs_postgres
def test_the_installed_function_is_the_text_of_its_file(name: str) -> None:
    with connection.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {SCRATCH}")
        # The file names no schema: with the scratch schema first on the path, it lands there.
        cur.execute(f"SET LOCAL search_path = {SCRATCH}, public")
        cur.execute(function_sql(name))
    from_file = functiondef(SCRATCH, name)
    installed = functiondef("public", name)
    assert len(from_file) == 1
    assert installed == from_file


@pytest.mark.django_db
@needs_postgres
def test_no_other_version_of_a_money_core_function_is_installed() -> None:
    """A changed signature adds a function beside the old one unless a migration drops it."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public' AND p.proname LIKE 'lowrouter%%' ORDER BY p.proname"
        )
        installed = [row[0] for row in cur.fetchall()]
    assert installed == sorted(FUNCTIONS)
