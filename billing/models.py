"""Credits, the ledger that explains them, holds on them, and the per-request usage record.

Money is stored as integer micro-credits (1 credit = EUR 0.01, 1 micro-credit = 1e-6 credit):
exact on SQLite and PostgreSQL alike, and summable without rounding drift. ``billing.money``
converts at the edges.
"""

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from billing.ids import new_generation_id
from billing.money import format_eur, micros_to_credits


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
        permissions = [("adjust_wallet", "Can adjust a balance or grant promotional credit")]

    def __str__(self) -> str:
        return f"wallet of {self.account_id}"


class LedgerKind(models.TextChoices):
    TOPUP = "topup", "Top-up"
    USAGE = "usage", "Usage"
    PROMO_GRANT = "promo_grant", "Promotional grant"
    ACTIVATION_CODE = "activation_code", "Activation code"
    ADJUSTMENT = "adjustment", "Operator adjustment"
    REFUND = "refund", "Refund"


class LedgerEntryQuerySet(models.QuerySet):
    def for_account(self, account_id: int) -> "LedgerEntryQuerySet":
        return self.filter(account_id=account_id)

    def total_micros(self) -> int:
        """The sum of the entries' amounts: for one account, what its balance must be."""
        return int(self.aggregate(total=models.Sum("amount_micros"))["total"] or 0)


class LedgerEntry(models.Model):
    """Append-only: a row is written once, at its final amount, and never deleted. The only
    changes are the ``generation`` and ``actor`` links set to NULL when a usage record is purged
    or an operator's user deleted. On PostgreSQL a trigger refuses anything else
    (``billing/sql/lowrouter_ledger_append_only.sql``)."""

    # Every request writes a row: no index the (account, created_at) one already covers, and
    # the operator index only over the rows an operator made.
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
        db_index=False,
    )
    kind = models.CharField(max_length=20, choices=LedgerKind)
    amount_micros = models.BigIntegerField(help_text="Positive credits in, negative out.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Purging old usage records deletes generations; their entries and amounts stay.
    generation = models.OneToOneField(
        "Generation", null=True, blank=True, on_delete=models.SET_NULL, related_name="ledger_entry"
    )
    reference = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ledger_actions",
        db_index=False,
    )
    # Not a column: billing.ledger.apply_entry sets it on the entry it returns.
    balance_after: int

    objects = LedgerEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "created_at"]),
            models.Index(
                fields=["actor"], condition=models.Q(actor__isnull=False), name="ledger_actor_set"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_micros} for {self.account_id}"


class HoldQuerySet(models.QuerySet):
    def orphaned(self, *, created_before: datetime) -> "HoldQuerySet":
        """Holds neither placed nor renewed since ``created_before``: left by a process that
        died mid-request (a live stream renews its hold). renewed_at is never earlier than
        created_at, so the created_at index narrows the scan."""
        return self.filter(created_at__lt=created_before).filter(
            models.Q(renewed_at__isnull=True) | models.Q(renewed_at__lt=created_before)
        )


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
    # Touched every few minutes while the request's stream is still being relayed: the orphan
    # reaper only frees holds neither placed nor renewed within its window (NULL: never renewed).
    renewed_at = models.DateTimeField(null=True, blank=True)

    objects = HoldQuerySet.as_manager()

    def __str__(self) -> str:
        return f"hold {self.amount_micros} for {self.account_id}"


class GenerationStatus(models.TextChoices):
    OK = "ok"
    CLIENT_ERROR = "client_error"
    UPSTREAM_ERROR = "upstream_error"


class GenerationQuerySet(models.QuerySet):
    def for_account(self, account_id: int) -> "GenerationQuerySet":
        return self.filter(account_id=account_id)


class UsageSource(models.TextChoices):
    """Where a generation's token counts come from."""

    # The upstream's own usage block.
    REPORTED = "reported"
    # The stream ended without one (client gone, upstream cut or silent): counted by the
    # gateway from what it relayed, never more than the client received (docs/api.md).
    ESTIMATED = "estimated"


class Generation(models.Model):
    """One request through the gateway. Never holds prompt or completion text."""

    id = models.CharField(primary_key=True, max_length=40, default=new_generation_id)
    # Every request writes a row: no index the (account, created_at) one already covers.
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="generations",
        db_index=False,
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
    usage_source = models.CharField(
        max_length=16, choices=UsageSource, default=UsageSource.REPORTED
    )
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

    objects = GenerationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        return self.id

    def eco_to_api(self) -> dict | None:
        """The eco block of the API's usage record; None when no estimate was made."""
        if not self.methodology_version:
            return None
        return {
            "energy_wh": self.energy_wh,
            "carbon_g": self.carbon_g,
            "carbon_per_1k_tokens_g": self.carbon_per_1k_tokens_g,
            "accuracy": self.eco_accuracy,
            "methodology_version": self.methodology_version,
            "inputs": self.eco_inputs,
        }

    def to_api(self) -> dict:
        """The usage record as the API's ``/generation`` endpoint returns it."""
        prices = {
            "prompt": self.prompt_price_eur,
            "completion": self.completion_price_eur,
            "cached_prompt": self.cached_prompt_price_eur,
            "platform_fee": self.platform_fee_eur,
        }
        return {
            "generation_id": self.id,
            "created_at": self.created_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "key_id": self.key_id,
            "requested_model": self.requested_model,
            "resolved_model": self.resolved_model,
            "provider": self.provider,
            "region": self.region,
            "stream": self.stream,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "total_tokens": self.total_tokens,
            "latency_ms": self.latency_ms,
            "cost_credits": str(micros_to_credits(self.cost_micros)),
            "unbilled_credits": str(micros_to_credits(self.unbilled_micros)),
            "prices_eur_per_1m": {k: str(v) if v is not None else None for k, v in prices.items()},
            "status": self.status,
            "error_code": self.error_code or None,
            "usage_source": self.usage_source,
            "eco": self.eco_to_api(),
            "routing_trace": self.routing_trace,
        }


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
    """Per account, UTC day, model, key, provider and region: the aggregates the console charts,
    updated at settlement in the same statement as the generation record, so they always
    reconcile with the records (``billing.usage.reconcile_daily_usage`` checks it)."""

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_usage"
    )
    day = models.DateField()
    model = models.CharField(max_length=200)
    key = models.ForeignKey(
        "keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider = models.CharField(max_length=64, blank=True, default="")
    region = models.CharField(max_length=32, blank=True, default="")
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)
    energy_wh = models.FloatField(default=0)
    carbon_g = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "day", "model", "key", "provider", "region"],
                name="dailyusage_unique_slice",
            )
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.model} {self.provider}/{self.region}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# --- Money in: top-ups, VAT, invoices, refunds, campaigns ---------------------------------
# Amounts paid in EUR are integer cents (Stripe's unit). 1 credit = 1 cent, so the net credit
# amount of a top-up in cents is also its number of credits.


class VatRate(models.Model):
    """A member state's standard VAT rate from a date on. A rate change is a new row, never an
    edit, so invoices issued before the change can still be explained."""

    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2 (GR for Greece).")
    rate = models.DecimalField(max_digits=5, decimal_places=2, help_text="Percent, e.g. 20.00.")
    valid_from = models.DateField()

    class Meta:
        ordering = ["country", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["country", "valid_from"], name="vatrate_unique_date")
        ]

    def __str__(self) -> str:
        return f"{self.country} {self.rate}% from {self.valid_from}"


class VatTreatment(models.TextChoices):
    DOMESTIC = "domestic", "French VAT"
    EU_CONSUMER = "eu_consumer", "VAT of the customer's member state"
    REVERSE_CHARGE = "reverse_charge", "Reverse charge"
    OUTSIDE_EU = "outside_eu", "Outside the EU, no VAT"


class TopUpStatus(models.TextChoices):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    REFUNDED = "refunded"


class PaymentMethod(models.TextChoices):
    # The methods the checkout offers (billing/checkout.py); "" on top-ups paid before the
    # method was recorded.
    CARD = "card", "Card"
    SEPA_DEBIT = "sepa_debit", "SEPA Direct Debit"


class TopUp(models.Model):
    """One checkout: the quote the buyer accepted and what Stripe later confirmed."""

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="topups"
    )
    status = models.CharField(max_length=10, choices=TopUpStatus, default=TopUpStatus.PENDING)
    credits_cents = models.PositiveIntegerField(help_text="Net credit amount (= credits).")
    fee_cents = models.PositiveIntegerField()
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2)
    vat_cents = models.PositiveIntegerField()
    gross_cents = models.PositiveIntegerField()
    vat_treatment = models.CharField(max_length=20, choices=VatTreatment)
    # The buyer block at quote time: what the VAT decision and the invoice are based on.
    buyer = models.JSONField(default=dict, blank=True)
    stripe_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    payment_method = models.CharField(max_length=20, choices=PaymentMethod, blank=True)
    refunded_credits_cents = models.PositiveIntegerField(default=0)
    refunded_gross_cents = models.PositiveIntegerField(default=0)
    ledger_entry = models.OneToOneField(
        "LedgerEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="topup"
    )
    created_at = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("refund_topup", "Can refund a top-up through Stripe")]

    def __str__(self) -> str:
        return f"top-up {self.pk} ({self.status})"

    @property
    def net_cents(self) -> int:
        return self.credits_cents + self.fee_cents


class StripeEventStatus(models.TextChoices):
    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


class StripeEvent(models.Model):
    """Every webhook event, stored once by Stripe's id, with what we did about it."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    status = models.CharField(
        max_length=10, choices=StripeEventStatus, default=StripeEventStatus.RECEIVED
    )
    payload = models.JSONField()
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    handled_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.status})"


class InvoiceCounter(models.Model):
    """The last number used in an invoice series; locked while a number is taken, so numbers
    are sequential and gap-free (the number is taken in the transaction that issues)."""

    series = models.CharField(max_length=20, unique=True)
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.series}: {self.last_number}"


class InvoiceQuerySet(models.QuerySet):
    def for_account(self, account_id: int) -> "InvoiceQuerySet":
        return self.filter(account_id=account_id)


class Invoice(models.Model):
    """Immutable once issued. A correction is a new invoice that ``replaces`` this one."""

    number = models.CharField(max_length=32, unique=True)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="invoices"
    )
    topup = models.ForeignKey(TopUp, on_delete=models.PROTECT, related_name="invoices")
    replaces = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by"
    )
    issued_at = models.DateTimeField(default=timezone.now)
    seller = models.JSONField()
    buyer = models.JSONField()
    lines = models.JSONField(help_text="[{description, amount_cents}], net amounts.")
    net_cents = models.PositiveIntegerField()
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2)
    vat_cents = models.PositiveIntegerField()
    gross_cents = models.PositiveIntegerField()
    vat_treatment = models.CharField(max_length=20, choices=VatTreatment)
    emailed_at = models.DateTimeField(null=True, blank=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-issued_at", "-id"]
        constraints = [
            # One original invoice per top-up; re-issues hang off it through ``replaces``.
            models.UniqueConstraint(
                fields=["topup"],
                condition=models.Q(replaces__isnull=True),
                name="invoice_one_original_per_topup",
            )
        ]
        permissions = [("reissue_invoice", "Can re-issue an invoice")]

    def __str__(self) -> str:
        return self.number

    @property
    def reverse_charge(self) -> bool:
        return self.vat_treatment == VatTreatment.REVERSE_CHARGE

    @property
    def gross_display(self) -> str:
        return format_eur(self.gross_cents)


class RefundStatus(models.TextChoices):
    # Credits taken out and Stripe asked, no answer yet (or no clear one): sent again with the
    # same idempotency key until Stripe answers (``billing.refunds.retry_pending_refunds``).
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    # Stripe refused it: the credits were put back by a second ledger entry.
    FAILED = "failed"


class Refund(models.Model):
    """Money sent back for a top-up, and the credits taken out of the wallet for it."""

    topup = models.ForeignKey(TopUp, on_delete=models.PROTECT, related_name="refunds")
    credits_cents = models.PositiveIntegerField()
    gross_cents = models.PositiveIntegerField(help_text="What the buyer gets back, VAT included.")
    stripe_refund_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    ledger_entry = models.OneToOneField(
        "LedgerEntry", on_delete=models.PROTECT, related_name="refund"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=RefundStatus, default=RefundStatus.SUCCEEDED)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"refund {self.gross_cents} on top-up {self.topup_id} ({self.status})"


class CampaignEligibility(models.TextChoices):
    ANY_ACCOUNT = "any", "Any account"
    NEW_ACCOUNTS = "new_accounts", "Accounts created after the campaign started"


class Campaign(models.Model):
    """Operator-run onboarding credit. Nothing is granted unless an operator creates one."""

    name = models.CharField(max_length=200)
    credit_micros = models.BigIntegerField()
    eligibility = models.CharField(
        max_length=20, choices=CampaignEligibility, default=CampaignEligibility.ANY_ACCOUNT
    )
    starts_at = models.DateTimeField(default=timezone.now)
    deadline = models.DateTimeField()
    max_redemptions = models.PositiveIntegerField()
    redemptions_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(redemptions_count__lte=models.F("max_redemptions")),
                name="campaign_within_cap",
            ),
            models.CheckConstraint(
                condition=models.Q(credit_micros__gt=0), name="campaign_credit_positive"
            ),
        ]
        permissions = [("issue_codes", "Can generate and export activation codes")]

    def __str__(self) -> str:
        return self.name


class ActivationCode(models.Model):
    """A single-use code belonging to one campaign."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="codes")
    code = models.CharField(max_length=32, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    redeemed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.code


class Redemption(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="redemptions")
    code = models.OneToOneField(ActivationCode, on_delete=models.PROTECT, related_name="redemption")
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="redemptions"
    )
    ledger_entry = models.OneToOneField(
        "LedgerEntry", on_delete=models.PROTECT, related_name="redemption"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # A user gets a campaign's credit once, whichever of its codes they hold.
            models.UniqueConstraint(fields=["campaign", "account"], name="redemption_once_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.code_id} by {self.account_id}"
