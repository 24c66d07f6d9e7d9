"""A hold can be renewed while its stream is still being relayed, so the orphan reaper frees
only holds that nobody has renewed within its window. Nullable (never renewed): the reserve
function's explicit column list (PostgreSQL) leaves it out and needs no change."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_generation_usage_source")]

    operations = [
        migrations.AddField(
            model_name="hold",
            name="renewed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
