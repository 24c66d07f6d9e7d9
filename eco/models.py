"""Methodology versions and operator-defined grid regions, both edited in the admin.

A methodology version is data: every estimate stores the version string that produced it, and
a version's formula, coefficients and datasets never change once it exists (the admin makes
them read-only), so a stored estimate can always be recomputed with the numbers it was made with.
"""

from django.db import models, transaction
from django.utils import timezone


class AccuracyBand(models.TextChoices):
    # Ordered strongest first; eco.estimate.weaker_band relies on this order.
    ACCURATE = "accurate"
    MEDIUM = "medium"
    GROSS = "gross"


class MethodologyKind(models.TextChoices):
    LINEAR_PARAMS = "linear-params", "Linear in active parameters x total tokens"
    ECOLOGITS = "ecologits", "EcoLogits library (output tokens, latency, PUE, grid mix)"


class MethodologyVersion(models.Model):
    version = models.CharField(max_length=40, unique=True)
    kind = models.CharField(max_length=20, choices=MethodologyKind)
    formula = models.TextField(help_text="The formula in words and symbols, as documented.")
    coefficients = models.JSONField(default=dict)
    grid_dataset = models.CharField(
        max_length=60, help_text="Key of the shipped grid dataset, e.g. ember-owid-2023."
    )
    grid_source = models.CharField(max_length=200)
    grid_year = models.PositiveSmallIntegerField(help_text="Year the grid averages describe.")
    params_dataset_version = models.CharField(max_length=80)
    effective_at = models.DateField(default=timezone.now)
    is_current = models.BooleanField(
        default=False, help_text="The version used for new requests; exactly one is current."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-effective_at", "version"]
        constraints = [
            # At most one current version; make_current() swaps atomically so there is always one.
            models.UniqueConstraint(
                fields=["is_current"],
                condition=models.Q(is_current=True),
                name="eco_single_current_methodology",
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} (current)" if self.is_current else self.version

    def make_current(self) -> None:
        with transaction.atomic():
            # Clear first: the partial unique index would reject two current rows mid-swap.
            MethodologyVersion.objects.filter(is_current=True).exclude(pk=self.pk).update(
                is_current=False
            )
            MethodologyVersion.objects.filter(pk=self.pk).update(is_current=True)
        self.is_current = True


class GridRegion(models.Model):
    """A region whose grid intensity the operator sets by hand (e.g. ``local`` for a
    self-hosted server). It overrides a shipped region of the same code in every version."""

    code = models.SlugField(primary_key=True, max_length=32)
    label = models.CharField(max_length=120)
    g_per_kwh = models.DecimalField("grid intensity (gCO2e/kWh)", max_digits=7, decimal_places=1)
    reference_country = models.CharField(
        max_length=2,
        blank=True,
        help_text="ISO 3166 alpha-2 country whose water factor the EcoLogits version uses.",
    )
    data_year = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Year the value describes, if copied from a dataset."
    )
    accuracy = models.CharField(max_length=16, choices=AccuracyBand, default=AccuracyBand.GROSS)
    note = models.CharField(max_length=300, blank=True, help_text="Where the value comes from.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} ({self.g_per_kwh} g/kWh, operator-set)"
