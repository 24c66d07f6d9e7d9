"""Fewer indexes on the rows every request writes (a generation, a ledger entry).

Each index is one more insertion in the request's settlement, on the database's CPU: there
were five on a generation and seven on a ledger entry. Dropped: the single-column account
indexes (the (account, created_at) indexes serve every query by account), the actor index
over all rows (now only over the rows an operator made; deleting a user still finds its rows
through it), and on PostgreSQL the ``varchar_pattern_ops`` copies Django adds for text keys,
which only serve ``LIKE 'prefix%'`` and no query here makes one on a generation id.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# (model, field) whose PostgreSQL LIKE index goes.
LIKE_INDEXES = [("generation", "id"), ("ledgerentry", "generation")]


def _like_indexes(apps, schema_editor):
    for model_name, field_name in LIKE_INDEXES:
        model = apps.get_model("billing", model_name)
        field = model._meta.get_field(field_name)
        name = schema_editor._create_index_name(
            model._meta.db_table, [field.column], suffix="_like"
        )
        yield model, field, name


def drop_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for _, _, name in _like_indexes(apps, schema_editor):
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def restore_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for model, field, _ in _like_indexes(apps, schema_editor):
            schema_editor.execute(schema_editor._create_like_index_sql(model, field))


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0008_settle_commits_without_waiting"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="generation",
            name="account",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="generations",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="account",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="ledger_entries",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="ledger_actions",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddIndex(
            model_name="ledgerentry",
            index=models.Index(
                condition=models.Q(("actor__isnull", False)),
                fields=["actor"],
                name="ledger_actor_set",
            ),
        ),
        migrations.RunPython(drop_like_indexes, restore_like_indexes),
    ]
