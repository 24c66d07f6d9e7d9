"""Settlement caps a charge beyond its hold at what the key's day and month limits leave, not only
at what the wallet can pay: lowrouter_settle takes the two limits (ten arguments instead of
eight), so the old signature is dropped first."""

from typing import Any

from django.db import migrations

from billing.dbfunctions import install_functions

OLD = "lowrouter_settle(bigint, bigint, bigint, bigint, date, date, bigint, jsonb)"


def drop_old(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {OLD}")


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_daily_usage_by_key_provider_region")]

    operations = [
        migrations.RunPython(drop_old, migrations.RunPython.noop),
        install_functions({"lowrouter_settle": "f63690c7105e5b31"}),
    ]
