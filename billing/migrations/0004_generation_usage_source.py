"""A generation says whether its token counts were reported by the upstream or estimated by the
gateway (a stream that ended without a usage block). Rows written before are all reported.

The settle function (PostgreSQL) builds the row with ``jsonb_populate_record`` from the JSON the
gateway sends, which always carries ``usage_source``: no function change is needed."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_money_permissions")]

    operations = [
        migrations.AddField(
            model_name="generation",
            name="usage_source",
            field=models.CharField(
                choices=[("reported", "Reported"), ("estimated", "Estimated")],
                default="reported",
                max_length=16,
            ),
        ),
    ]
