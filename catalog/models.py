"""The catalogue: who serves which model, where, and at what price.

Provider x Model x Region is an Offering. Prices are stored in the provider's billing currency
per 1M tokens, exactly as the provider publishes them; the platform fee is per model, in EUR.
"""

from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class WireFormat(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible"
    ANTHROPIC = "anthropic", "Anthropic Messages"


class OutputBoundField(models.TextChoices):
    """The request field an OpenAI-compatible upstream obeys as its output-token bound.

    The gateway sends exactly one of them, carrying the bound its credit hold was sized for.
    Most compatible servers take ``max_tokens``; OpenAI itself deprecated it for
    ``max_completion_tokens`` and its reasoning models refuse ``max_tokens``.
    """

    MAX_TOKENS = "max_tokens", "max_tokens"
    MAX_COMPLETION_TOKENS = "max_completion_tokens", "max_completion_tokens"


class Currency(models.TextChoices):
    EUR = "EUR"
    USD = "USD"
    CNY = "CNY"


class ProviderStatus(models.TextChoices):
    OK = "ok"
    DEGRADED = "degraded"
    UNAVAILABLE = "unavailable"


class AccuracyBand(models.TextChoices):
    ACCURATE = "accurate"
    MEDIUM = "medium"
    GROSS = "gross"


class Lifecycle(models.TextChoices):
    ACTIVE = "active"
    DEPRECATED = "deprecated"


class Provider(models.Model):
    id = models.SlugField(primary_key=True, max_length=64)
    name = models.CharField(max_length=120)
    wire_format = models.CharField(max_length=16, choices=WireFormat, default=WireFormat.OPENAI)
    output_bound_field = models.CharField(
        max_length=32,
        choices=OutputBoundField,
        default=OutputBoundField.MAX_TOKENS,
        help_text="OpenAI-compatible providers: the field that carries the output-token bound "
        "(Anthropic Messages always takes max_tokens).",
    )
    base_url = models.URLField(max_length=300, help_text="API root, e.g. https://api.openai.com/v1")
    # A provider authenticates with either an environment variable (preferred: the secret never
    # touches the database) or a value stored encrypted. Neither is ever displayed back.
    credential_env = models.CharField(max_length=100, blank=True)
    credential_encrypted = models.TextField(blank=True, editable=False)
    requires_credential = models.BooleanField(
        default=True, help_text="Off for local servers (demo, vLLM, Ollama) that need no key."
    )
    billing_currency = models.CharField(max_length=3, choices=Currency, default=Currency.USD)
    status = models.CharField(max_length=16, choices=ProviderStatus, default=ProviderStatus.OK)
    data_handling = models.JSONField(
        default=dict, blank=True, help_text="retention, training_use, launch_status, notes"
    )
    is_demo = models.BooleanField(default=False)
    price_list_url = models.URLField(
        max_length=300, blank=True, help_text="Optional remote JSON price list (daily ingest)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id


class Model(models.Model):
    id = models.CharField(primary_key=True, max_length=200, help_text="<provider-or-owner>/<model>")
    display_name = models.CharField(max_length=200)
    owner = models.CharField(max_length=100)
    context_window = models.PositiveIntegerField()
    max_output_tokens = models.PositiveIntegerField()
    supports_tools = models.BooleanField(default=False)
    supports_vision = models.BooleanField(default=False)
    supports_structured_output = models.BooleanField(default=False)
    supports_streaming = models.BooleanField(default=True)
    # Active parameters in billions (for MoE models the active, not the total, count).
    active_params_b = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    params_source = models.CharField(max_length=300, blank=True)
    params_accuracy = models.CharField(
        max_length=16, choices=AccuracyBand, default=AccuracyBand.GROSS
    )
    params_nominal = models.BooleanField(
        default=False, help_text="A nominal count declared for a demo model, not a measured one."
    )
    platform_fee_per_1m = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal("0"), help_text="EUR per 1M tokens"
    )
    lifecycle = models.CharField(max_length=16, choices=Lifecycle, default=Lifecycle.ACTIVE)
    sunset_at = models.DateTimeField(null=True, blank=True)
    replacement = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id

    @property
    def capabilities(self) -> list[str]:
        flags = [
            ("tool_use", self.supports_tools),
            ("vision", self.supports_vision),
            ("structured_output", self.supports_structured_output),
            ("streaming", self.supports_streaming),
        ]
        return [name for name, on in flags if on]

    def clean(self) -> None:
        # Deprecation is only honest with a date: it is what the model card and the error show.
        if self.lifecycle == Lifecycle.DEPRECATED and self.sunset_at is None:
            raise ValidationError({"sunset_at": "A deprecated model needs a sunset date."})

    def is_sunset(self, now: datetime | None = None) -> bool:
        return self.sunset_at is not None and self.sunset_at <= (now or timezone.now())


class Offering(models.Model):
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="offerings")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="offerings")
    region = models.SlugField(max_length=32)
    upstream_model = models.CharField(max_length=200)
    # Prices per 1M tokens in the provider's billing currency.
    prompt_price = models.DecimalField(max_digits=14, decimal_places=6)
    completion_price = models.DecimalField(max_digits=14, decimal_places=6)
    cached_prompt_price = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True
    )
    enabled = models.BooleanField(default=True, help_text="Operator soft-disable.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_id", "provider_id", "region"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "provider", "region"], name="offering_unique_slot"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_id} @ {self.provider_id}/{self.region}"


# --- FX: ECB reference rates ------------------------------------------------------------------


class FxRate(models.Model):
    """One ECB reference rate: 1 EUR = ``quote`` units of ``currency`` on ``ecb_date``."""

    currency = models.CharField(max_length=3)
    ecb_date = models.DateField()
    quote = models.DecimalField(max_digits=18, decimal_places=6)
    fetched_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-ecb_date", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["currency", "ecb_date"], name="fxrate_unique_day")
        ]

    def __str__(self) -> str:
        return f"EUR/{self.currency} {self.quote} ({self.ecb_date})"


class FxIngestRun(models.Model):
    """One run of the FX ingest; the latest run decides whether FX_INGEST_STALE is raised."""

    started_at = models.DateTimeField(default=timezone.now)
    source_url = models.URLField(max_length=300)
    ok = models.BooleanField(default=False)
    newest_ecb_date = models.DateField(null=True, blank=True)
    rates_stored = models.PositiveIntegerField(default=0)
    # Billing currencies whose newest rate was missing or older than the calendar allows.
    stale_currencies = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"FX ingest {self.started_at:%Y-%m-%d %H:%M} {'ok' if self.ok else 'failed'}"

    @property
    def is_stale(self) -> bool:
        return not self.ok or bool(self.stale_currencies)


# --- Prices: history, approval, platform fee schedule ----------------------------------------


class PriceChangeStatus(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    APPLIED = "applied"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"


class PriceChange(models.Model):
    """A proposed or applied price of an offering; the applied rows are its price history."""

    offering = models.ForeignKey(Offering, on_delete=models.CASCADE, related_name="price_changes")
    prompt_price = models.DecimalField(max_digits=14, decimal_places=6)
    completion_price = models.DecimalField(max_digits=14, decimal_places=6)
    cached_prompt_price = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True
    )
    old_prompt_price = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    old_completion_price = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True
    )
    old_cached_prompt_price = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True
    )
    source = models.CharField(max_length=300, help_text="file:<name>, url:<price list>, admin")
    status = models.CharField(max_length=16, choices=PriceChangeStatus)
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # When the price started to apply (set when applied; the history is ordered by it).
    effective_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["offering", "status"])]

    def __str__(self) -> str:
        return f"{self.offering} {self.prompt_price}/{self.completion_price} ({self.status})"


class FeeChangeStatus(models.TextChoices):
    SCHEDULED = "scheduled"
    APPLIED = "applied"
    CANCELLED = "cancelled"


class PlatformFeeChange(models.Model):
    """A platform fee change of a model; increases wait out the notice period (30+ days)."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="fee_changes")
    old_fee = models.DecimalField(max_digits=12, decimal_places=6)
    new_fee = models.DecimalField(max_digits=12, decimal_places=6)
    effective_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=FeeChangeStatus)
    source = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)
    announced_at = models.DateTimeField(null=True, blank=True)
    announced_to = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-effective_at", "-id"]

    def __str__(self) -> str:
        return (
            f"{self.model_id} fee {self.old_fee} -> {self.new_fee} on {self.effective_at:%Y-%m-%d}"
        )
