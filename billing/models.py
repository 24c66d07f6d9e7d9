"""Credits, the ledger that explains them, holds on them, and the per-request usage record.

Money is stored as integer micro-credits (1 credit = EUR 0.01, 1 micro-credit = 1e-6 credit):
exact on SQLite and PostgreSQL alike, and summable without rounding drift. ``billing.money``
converts at the edges.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from billing.ids import new_generation_id


class Wallet(models.Model):
    """The running balance of an account. Every change to ``balance_micros`` is written in the
    same transaction as the ledger entry that explains it, so balance == sum(ledger)."""

    account = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wallet"
    )
    balance_micros = models.BigIntegerField(default=0)
    # Sum of the open holds: credit promised to requests in flight, not spendable by others.
    reserved_micros = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(balance_micros__gte=0), name="wallet_balance_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(reserved_micros__gte=0), name="wallet_reserved_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"wallet of {self.account_id}"


class LedgerKind(models.TextChoices):
    TOPUP = "topup", "Top-up"
    USAGE = "usage", "Usage"
    PROMO_GRANT = "promo_grant", "Promotional grant"
    ACTIVATION_CODE = "activation_code", "Activation code"
    ADJUSTMENT = "adjustment", "Operator adjustment"
    REFUND = "refund", "Refund"


class LedgerEntry(models.Model):
    """Append-only: rows are never updated or deleted."""

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    kind = models.CharField(max_length=20, choices=LedgerKind)
    amount_micros = models.BigIntegerField(help_text="Positive credits in, negative out.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    generation = models.OneToOneField(
        "Generation", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entry"
    )
    reference = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ledger_actions",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_micros} for {self.account_id}"


class Hold(models.Model):
    """Credit reserved for one request in flight. Deleted when the request settles; a hold that
    outlives its process is released by a periodic task."""

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="holds"
    )
    key = models.ForeignKey("keys.ApiKey", null=True, on_delete=models.CASCADE)
    amount_micros = models.BigIntegerField()
    # The key spend periods the hold counts against, so settlement and the orphan reaper
    # release the same counters the reservation charged.
    day = models.DateField()
    month = models.DateField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"hold {self.amount_micros} for {self.account_id}"


class GenerationStatus(models.TextChoices):
    OK = "ok"
    CLIENT_ERROR = "client_error"
    UPSTREAM_ERROR = "upstream_error"


class Generation(models.Model):
    """One request through the gateway. Never holds prompt or completion text."""

    id = models.CharField(primary_key=True, max_length=40, default=new_generation_id)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="generations"
    )
    key = models.ForeignKey(
        "keys.ApiKey", null=True, on_delete=models.SET_NULL, related_name="generations"
    )
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    requested_model = models.CharField(max_length=200)
    resolved_model = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=64, blank=True)
    region = models.CharField(max_length=32, blank=True)
    stream = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_prompt_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # Prices in force at request time, EUR per 1M tokens, platform fee included separately.
    prompt_price_eur = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    completion_price_eur = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    cached_prompt_price_eur = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    platform_fee_eur = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    cost_micros = models.BigIntegerField(default=0)
    # Cost the hold did not cover and the balance could not pay (kept visible, never hidden).
    unbilled_micros = models.BigIntegerField(default=0)
    status = models.CharField(max_length=20, choices=GenerationStatus)
    error_code = models.CharField(max_length=64, blank=True)
    routing_trace = models.JSONField(default=dict, blank=True)
    # Eco estimate, omitted (NULL) when it cannot be computed honestly.
    energy_wh = models.FloatField(null=True, blank=True)
    carbon_g = models.FloatField(null=True, blank=True)
    carbon_per_1k_tokens_g = models.FloatField(null=True, blank=True)
    eco_accuracy = models.CharField(max_length=16, blank=True)
    methodology_version = models.CharField(max_length=40, blank=True)
    eco_inputs = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        return self.id


class SpendPeriod(models.TextChoices):
    DAY = "day"
    MONTH = "month"


class KeySpend(models.Model):
    """What one key spent (and holds) in one UTC day or calendar month, for its credit limits."""

    key = models.ForeignKey("keys.ApiKey", on_delete=models.CASCADE, related_name="spend")
    period = models.CharField(max_length=8, choices=SpendPeriod)
    period_start = models.DateField()
    spent_micros = models.BigIntegerField(default=0)
    reserved_micros = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["key", "period", "period_start"], name="keyspend_unique_period"
            ),
            models.CheckConstraint(
                condition=models.Q(reserved_micros__gte=0), name="keyspend_reserved_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key_id} {self.period} {self.period_start}"


class DailyUsage(models.Model):
    """Per account, UTC day and model: the aggregates the dashboard charts, updated at settlement
    in the same transaction as the generation record (reproducible from the records)."""

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_usage"
    )
    day = models.DateField()
    model = models.CharField(max_length=200)
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)
    energy_wh = models.FloatField(default=0)
    carbon_g = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "day", "model"], name="dailyusage_unique")
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.model}"
