"""What operators post on the public trust pages: incidents (/status) and changelog entries
(/changelog). Both are written in the admin; bodies are Markdown."""

from datetime import date, datetime, timedelta

from django.db import models
from django.utils import timezone


class IncidentSeverity(models.TextChoices):
    MAINTENANCE = "maintenance", "Maintenance"
    MINOR = "minor", "Minor: degraded service"
    MAJOR = "major", "Major: outage"


class IncidentQuerySet(models.QuerySet):
    def shown_on_status(self, *, now: datetime, days: int = 30) -> "IncidentQuerySet":
        """Open incidents and those resolved in the last ``days`` days."""
        since = now - timedelta(days=days)
        return self.filter(models.Q(resolved_at__isnull=True) | models.Q(resolved_at__gte=since))


class Incident(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, help_text="Markdown: what happened, who is affected.")
    severity = models.CharField(
        max_length=20, choices=IncidentSeverity, default=IncidentSeverity.MINOR
    )
    started_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty while the incident is open."
    )

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(resolved_at__isnull=True)
                | models.Q(resolved_at__gte=models.F("started_at")),
                name="incident_resolved_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


def utc_today() -> date:
    return timezone.now().date()


class ChangelogKind(models.TextChoices):
    PRODUCT = "product", "Product"
    PRICING = "pricing", "Pricing"
    ECO_METHODOLOGY = "eco_methodology", "Eco methodology"
    LEGAL = "legal", "Legal and policies"


class ChangelogEntry(models.Model):
    date = models.DateField(default=utc_today, help_text="When the change took effect (UTC).")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, help_text="Markdown.")
    kind = models.CharField(max_length=20, choices=ChangelogKind, default=ChangelogKind.PRODUCT)

    class Meta:
        ordering = ["-date", "-id"]
        verbose_name_plural = "changelog entries"

    def __str__(self) -> str:
        return f"{self.date} {self.title}"
