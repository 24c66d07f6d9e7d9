"""The ledger becomes truly append-only.

- ``lowrouter_settle`` writes the usage entry once, at the amount the wallet paid (it used to
  write the charge asked for, then update or delete the entry when the wallet could not pay).
- On PostgreSQL a trigger refuses any UPDATE or DELETE of a ledger entry other than setting its
  generation or actor link to NULL.
- That link to the generation is ``SET_NULL`` instead of ``PROTECT``, so that a purge of old
  usage records can delete generations and leave their entries and amounts as they are.
- ``lowrouter_reserve`` is re-installed for its comments only (they named the old migrations).
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models

from billing.dbfunctions import install_functions

TRIGGER = (
    "CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON billing_ledgerentry"
    " FOR EACH ROW EXECUTE FUNCTION lowrouter_ledger_append_only()"
)


def create_trigger(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER)


def drop_trigger(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP TRIGGER IF EXISTS ledger_append_only ON billing_ledgerentry")


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_money_core_squashed")]

    operations = [
        migrations.AlterField(
            model_name="ledgerentry",
            name="generation",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="ledger_entry",
                to="billing.generation",
            ),
        ),
        install_functions(
            {"lowrouter_reserve": "27d2c2bd4822a6ac", "lowrouter_settle": "af071ed105a9a09b"}
        ),
        install_functions(
            {"lowrouter_ledger_append_only": "b259c3a44dd4d878"}, drop_on_reverse=True
        ),
        migrations.RunPython(create_trigger, drop_trigger),
    ]
