"""Explicit permissions for the staff actions that move money or issue credit."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_append_only_ledger"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="campaign",
            options={
                "ordering": ["-created_at"],
                "permissions": [("issue_codes", "Can generate and export activation codes")],
            },
        ),
        migrations.AlterModelOptions(
            name="invoice",
            options={
                "ordering": ["-issued_at", "-id"],
                "permissions": [("reissue_invoice", "Can re-issue an invoice")],
            },
        ),
        migrations.AlterModelOptions(
            name="topup",
            options={
                "ordering": ["-created_at"],
                "permissions": [("refund_topup", "Can refund a top-up through Stripe")],
            },
        ),
        migrations.AlterModelOptions(
            name="wallet",
            options={
                "permissions": [
                    ("adjust_wallet", "Can adjust a balance or grant promotional credit")
                ]
            },
        ),
    ]
