"""Billing's schema, squashed from migrations 0001-0011 before any production data existed.

A database that applied the old chain records this one as applied without running it
(``replaces``); a fresh one gets the same tables, indexes and constraints as the old chain gave,
then the VAT rates (once 0003), the dropped pattern indexes (once 0009) and the money core's
PostgreSQL functions, installed from their files in ``billing/sql/`` (see ``billing/dbfunctions.py``
for the rule on changing them).
"""

from datetime import date

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import billing.ids
from billing.dbfunctions import install_functions

# VAT: standard rates of the 27 member states, dated (was 0003). Base rows are valid from
# 2024-01-01; a change since is a row of its own, so a rate change is a data migration.
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


# Fewer indexes on the rows every request writes (was 0009): on PostgreSQL Django adds a
# ``varchar_pattern_ops`` copy of each text key's index, which only serves ``LIKE 'prefix%'``,
# and no query makes one on a generation id.
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
        # CreateModel leaves its indexes and foreign keys to the end of the migration; create
        # them now (as the end would) so that the pattern indexes exist to be dropped.
        while schema_editor.deferred_sql:
            schema_editor.execute(schema_editor.deferred_sql.pop(0))
        for _, _, name in _like_indexes(apps, schema_editor):
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def restore_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for model, field, _ in _like_indexes(apps, schema_editor):
            schema_editor.execute(schema_editor._create_like_index_sql(model, field))


class Migration(migrations.Migration):
    initial = True

    replaces = [
        ("billing", "0001_initial"),
        ("billing", "0002_money_in"),
        ("billing", "0003_vat_rates"),
        ("billing", "0004_spending_functions"),
        ("billing", "0005_reserve_commits_without_waiting"),
        ("billing", "0006_reserve_checks_the_key"),
        ("billing", "0007_settle_takes_shared_rows_last"),
        ("billing", "0008_settle_commits_without_waiting"),
        ("billing", "0009_fewer_indexes_on_request_rows"),
        ("billing", "0010_reserve_counts_key_spend_in_one_statement"),
        ("billing", "0011_refund_status"),
    ]

    dependencies = [
        ("keys", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="InvoiceCounter",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("series", models.CharField(max_length=20, unique=True)),
                ("last_number", models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="StripeEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("event_id", models.CharField(max_length=255, unique=True)),
                ("type", models.CharField(max_length=100)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("received", "Received"),
                            ("processed", "Processed"),
                            ("ignored", "Ignored"),
                            ("failed", "Failed"),
                        ],
                        default="received",
                        max_length=10,
                    ),
                ),
                ("payload", models.JSONField()),
                ("error", models.TextField(blank=True)),
                ("received_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("handled_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.CreateModel(
            name="Campaign",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200)),
                ("credit_micros", models.BigIntegerField()),
                (
                    "eligibility",
                    models.CharField(
                        choices=[
                            ("any", "Any account"),
                            ("new_accounts", "Accounts created after the campaign started"),
                        ],
                        default="any",
                        max_length=20,
                    ),
                ),
                ("starts_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("deadline", models.DateTimeField()),
                ("max_redemptions", models.PositiveIntegerField()),
                ("redemptions_count", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
            },
        ),
        migrations.CreateModel(
            name="ActivationCode",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("code", models.CharField(max_length=32, unique=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("redeemed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "campaign",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="codes",
                        to="billing.campaign",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="DailyUsage",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("day", models.DateField()),
                ("model", models.CharField(max_length=200)),
                ("requests", models.PositiveIntegerField(default=0)),
                ("prompt_tokens", models.BigIntegerField(default=0)),
                ("completion_tokens", models.BigIntegerField(default=0)),
                ("cost_micros", models.BigIntegerField(default=0)),
                ("energy_wh", models.FloatField(default=0)),
                ("carbon_g", models.FloatField(default=0)),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="daily_usage",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="Generation",
            fields=[
                (
                    "id",
                    models.CharField(
                        default=billing.ids.new_generation_id,
                        max_length=40,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("completed_at", models.DateTimeField(blank=True, null=True)),
                ("requested_model", models.CharField(max_length=200)),
                ("resolved_model", models.CharField(blank=True, max_length=200)),
                ("provider", models.CharField(blank=True, max_length=64)),
                ("region", models.CharField(blank=True, max_length=32)),
                ("stream", models.BooleanField(default=False)),
                ("prompt_tokens", models.PositiveIntegerField(default=0)),
                ("completion_tokens", models.PositiveIntegerField(default=0)),
                ("cached_prompt_tokens", models.PositiveIntegerField(default=0)),
                ("total_tokens", models.PositiveIntegerField(default=0)),
                ("latency_ms", models.PositiveIntegerField(blank=True, null=True)),
                (
                    "prompt_price_eur",
                    models.DecimalField(decimal_places=6, max_digits=14, null=True),
                ),
                (
                    "completion_price_eur",
                    models.DecimalField(decimal_places=6, max_digits=14, null=True),
                ),
                (
                    "cached_prompt_price_eur",
                    models.DecimalField(decimal_places=6, max_digits=14, null=True),
                ),
                (
                    "platform_fee_eur",
                    models.DecimalField(decimal_places=6, max_digits=14, null=True),
                ),
                ("cost_micros", models.BigIntegerField(default=0)),
                ("unbilled_micros", models.BigIntegerField(default=0)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("ok", "Ok"),
                            ("client_error", "Client Error"),
                            ("upstream_error", "Upstream Error"),
                        ],
                        max_length=20,
                    ),
                ),
                ("error_code", models.CharField(blank=True, max_length=64)),
                ("routing_trace", models.JSONField(blank=True, default=dict)),
                ("energy_wh", models.FloatField(blank=True, null=True)),
                ("carbon_g", models.FloatField(blank=True, null=True)),
                ("carbon_per_1k_tokens_g", models.FloatField(blank=True, null=True)),
                ("eco_accuracy", models.CharField(blank=True, max_length=16)),
                ("methodology_version", models.CharField(blank=True, max_length=40)),
                ("eco_inputs", models.JSONField(blank=True, default=dict)),
                (
                    "account",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="generations",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "key",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="generations",
                        to="keys.apikey",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
            },
        ),
        migrations.CreateModel(
            name="Hold",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("amount_micros", models.BigIntegerField()),
                ("day", models.DateField()),
                ("month", models.DateField()),
                (
                    "created_at",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                ),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="holds",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "key",
                    models.ForeignKey(
                        null=True, on_delete=django.db.models.deletion.CASCADE, to="keys.apikey"
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="KeySpend",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "period",
                    models.CharField(choices=[("day", "Day"), ("month", "Month")], max_length=8),
                ),
                ("period_start", models.DateField()),
                ("spent_micros", models.BigIntegerField(default=0)),
                ("reserved_micros", models.BigIntegerField(default=0)),
                (
                    "key",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="spend",
                        to="keys.apikey",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="LedgerEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("topup", "Top-up"),
                            ("usage", "Usage"),
                            ("promo_grant", "Promotional grant"),
                            ("activation_code", "Activation code"),
                            ("adjustment", "Operator adjustment"),
                            ("refund", "Refund"),
                        ],
                        max_length=20,
                    ),
                ),
                (
                    "amount_micros",
                    models.BigIntegerField(help_text="Positive credits in, negative out."),
                ),
                (
                    "created_at",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                ),
                ("reference", models.CharField(blank=True, max_length=200)),
                ("reason", models.CharField(blank=True, max_length=500)),
                (
                    "account",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="ledger_entries",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="ledger_actions",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "generation",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="ledger_entry",
                        to="billing.generation",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="Redemption",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="redemptions",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "campaign",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="redemptions",
                        to="billing.campaign",
                    ),
                ),
                (
                    "code",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="redemption",
                        to="billing.activationcode",
                    ),
                ),
                (
                    "ledger_entry",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="redemption",
                        to="billing.ledgerentry",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="TopUp",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("paid", "Paid"),
                            ("failed", "Failed"),
                            ("refunded", "Refunded"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                (
                    "credits_cents",
                    models.PositiveIntegerField(help_text="Net credit amount (= credits)."),
                ),
                ("fee_cents", models.PositiveIntegerField()),
                ("vat_rate", models.DecimalField(decimal_places=2, max_digits=5)),
                ("vat_cents", models.PositiveIntegerField()),
                ("gross_cents", models.PositiveIntegerField()),
                (
                    "vat_treatment",
                    models.CharField(
                        choices=[
                            ("domestic", "French VAT"),
                            ("eu_consumer", "VAT of the customer's member state"),
                            ("reverse_charge", "Reverse charge"),
                            ("outside_eu", "Outside the EU, no VAT"),
                        ],
                        max_length=20,
                    ),
                ),
                ("buyer", models.JSONField(blank=True, default=dict)),
                (
                    "stripe_session_id",
                    models.CharField(blank=True, max_length=255, null=True, unique=True),
                ),
                (
                    "stripe_payment_intent_id",
                    models.CharField(blank=True, db_index=True, max_length=255),
                ),
                ("refunded_credits_cents", models.PositiveIntegerField(default=0)),
                ("refunded_gross_cents", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("paid_at", models.DateTimeField(blank=True, null=True)),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="topups",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "ledger_entry",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="topup",
                        to="billing.ledgerentry",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
            },
        ),
        migrations.CreateModel(
            name="Refund",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("credits_cents", models.PositiveIntegerField()),
                (
                    "gross_cents",
                    models.PositiveIntegerField(
                        help_text="What the buyer gets back, VAT included."
                    ),
                ),
                (
                    "stripe_refund_id",
                    models.CharField(blank=True, max_length=255, null=True, unique=True),
                ),
                ("reason", models.CharField(blank=True, max_length=500)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "ledger_entry",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="refund",
                        to="billing.ledgerentry",
                    ),
                ),
                (
                    "topup",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="refunds",
                        to="billing.topup",
                    ),
                ),
                # Last, as 0011_refund_status added it: the same table as on databases migrated then.
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                        ],
                        default="succeeded",
                        max_length=10,
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="Invoice",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.CharField(max_length=32, unique=True)),
                ("issued_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("seller", models.JSONField()),
                ("buyer", models.JSONField()),
                (
                    "lines",
                    models.JSONField(help_text="[{description, amount_cents}], net amounts."),
                ),
                ("net_cents", models.PositiveIntegerField()),
                ("vat_rate", models.DecimalField(decimal_places=2, max_digits=5)),
                ("vat_cents", models.PositiveIntegerField()),
                ("gross_cents", models.PositiveIntegerField()),
                (
                    "vat_treatment",
                    models.CharField(
                        choices=[
                            ("domestic", "French VAT"),
                            ("eu_consumer", "VAT of the customer's member state"),
                            ("reverse_charge", "Reverse charge"),
                            ("outside_eu", "Outside the EU, no VAT"),
                        ],
                        max_length=20,
                    ),
                ),
                ("emailed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="invoices",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "replaces",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="replaced_by",
                        to="billing.invoice",
                    ),
                ),
                (
                    "topup",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="invoices",
                        to="billing.topup",
                    ),
                ),
            ],
            options={
                "ordering": ["-issued_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="VatRate",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "country",
                    models.CharField(help_text="ISO 3166-1 alpha-2 (GR for Greece).", max_length=2),
                ),
                (
                    "rate",
                    models.DecimalField(
                        decimal_places=2, help_text="Percent, e.g. 20.00.", max_digits=5
                    ),
                ),
                ("valid_from", models.DateField()),
            ],
            options={
                "ordering": ["country", "-valid_from"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("country", "valid_from"), name="vatrate_unique_date"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="Wallet",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("balance_micros", models.BigIntegerField(default=0)),
                ("reserved_micros", models.BigIntegerField(default=0)),
                (
                    "account",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="wallet",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.AddConstraint(
            model_name="campaign",
            constraint=models.CheckConstraint(
                condition=models.Q(("redemptions_count__lte", models.F("max_redemptions"))),
                name="campaign_within_cap",
            ),
        ),
        migrations.AddConstraint(
            model_name="campaign",
            constraint=models.CheckConstraint(
                condition=models.Q(("credit_micros__gt", 0)), name="campaign_credit_positive"
            ),
        ),
        migrations.AddConstraint(
            model_name="dailyusage",
            constraint=models.UniqueConstraint(
                fields=("account", "day", "model"), name="dailyusage_unique"
            ),
        ),
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(
                fields=["account", "-created_at"], name="billing_gen_account_9dc8ec_idx"
            ),
        ),
        migrations.AddConstraint(
            model_name="keyspend",
            constraint=models.UniqueConstraint(
                fields=("key", "period", "period_start"), name="keyspend_unique_period"
            ),
        ),
        migrations.AddConstraint(
            model_name="keyspend",
            constraint=models.CheckConstraint(
                condition=models.Q(("reserved_micros__gte", 0)),
                name="keyspend_reserved_not_negative",
            ),
        ),
        migrations.AddIndex(
            model_name="ledgerentry",
            index=models.Index(
                fields=["account", "created_at"], name="billing_led_account_eeede7_idx"
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
        migrations.AddConstraint(
            model_name="redemption",
            constraint=models.UniqueConstraint(
                fields=("campaign", "account"), name="redemption_once_per_user"
            ),
        ),
        migrations.AddConstraint(
            model_name="invoice",
            constraint=models.UniqueConstraint(
                condition=models.Q(("replaces__isnull", True)),
                fields=("topup",),
                name="invoice_one_original_per_topup",
            ),
        ),
        migrations.AddConstraint(
            model_name="wallet",
            constraint=models.CheckConstraint(
                condition=models.Q(("balance_micros__gte", 0)), name="wallet_balance_not_negative"
            ),
        ),
        migrations.AddConstraint(
            model_name="wallet",
            constraint=models.CheckConstraint(
                condition=models.Q(("reserved_micros__gte", 0)), name="wallet_reserved_not_negative"
            ),
        ),
        migrations.RunPython(load_rates, unload_rates),
        migrations.RunPython(drop_like_indexes, restore_like_indexes),
        install_functions(
            {
                "lowrouter_key_fingerprint": "d26d08286f982c6a",
                "lowrouter_reserve": "28a9cf6bb11c37bc",
                "lowrouter_settle": "a981c2d976c825e8",
            },
            drop_on_reverse=True,
        ),
    ]
