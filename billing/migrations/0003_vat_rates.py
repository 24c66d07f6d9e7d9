"""Standard VAT rates of the 27 member states, dated, and the invoice number series.

Base rows are valid from 2024-01-01 (the table's start); the changes since then are rows of
their own, so a rate change is a data migration like this one, never a code change.
"""

from datetime import date

from django.db import migrations

BASE = date(2024, 1, 1)
RATES = [
    # (country, percent, valid_from)
    ("AT", "20", BASE),
    ("BE", "21", BASE),
    ("BG", "20", BASE),
    ("HR", "25", BASE),
    ("CY", "19", BASE),
    ("CZ", "21", BASE),
    ("DK", "25", BASE),
    ("EE", "22", BASE),
    ("EE", "24", date(2025, 7, 1)),
    ("FI", "24", BASE),
    ("FI", "25.5", date(2024, 9, 1)),
    ("FR", "20", BASE),
    ("DE", "19", BASE),
    ("GR", "24", BASE),
    ("HU", "27", BASE),
    ("IE", "23", BASE),
    ("IT", "22", BASE),
    ("LV", "21", BASE),
    ("LT", "21", BASE),
    ("LU", "17", BASE),
    ("MT", "18", BASE),
    ("NL", "21", BASE),
    ("PL", "23", BASE),
    ("PT", "23", BASE),
    ("RO", "19", BASE),
    ("RO", "21", date(2025, 8, 1)),
    ("SK", "20", BASE),
    ("SK", "23", date(2025, 1, 1)),
    ("SI", "22", BASE),
    ("ES", "21", BASE),
    ("SE", "25", BASE),
]


def load_rates(apps, schema_editor) -> None:  # noqa: ANN001
    VatRate = apps.get_model("billing", "VatRate")
    for country, rate, valid_from in RATES:
        VatRate.objects.get_or_create(
            country=country, valid_from=valid_from, defaults={"rate": rate}
        )
    apps.get_model("billing", "InvoiceCounter").objects.get_or_create(series="LR")


def unload_rates(apps, schema_editor) -> None:  # noqa: ANN001
    apps.get_model("billing", "VatRate").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_money_in")]
    operations = [migrations.RunPython(load_rates, unload_rates)]
