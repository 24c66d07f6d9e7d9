"""Account-level routing defaults: the least specific layer of the router's decision order."""

from django.conf import settings
from django.db import models


class AccountRoutingPolicy(models.Model):
    """What an account wants for every request unless a request or key says more.

    ``fixed_provider``, ``provider_allowlist`` and ``provider_denylist`` are hard limits (the
    customer controls); ``preferred_region`` and ``prefer_low_carbon`` only weigh in scoring.
    Save through ``routing.policies.save_policy`` so every process reloads its copy.
    """

    account = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="routing_policy"
    )
    preferred_region = models.SlugField(max_length=32, blank=True)
    prefer_low_carbon = models.BooleanField(default=False)
    fixed_provider = models.SlugField(max_length=64, blank=True)
    provider_allowlist = models.JSONField(default=list, blank=True)
    provider_denylist = models.JSONField(default=list, blank=True)
    # Rank by price when the request says nothing about order (as ``lowrouter/auto-cheap``).
    prefer_cheapest = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"routing policy of account {self.account_id}"


class UpstreamOverrun(models.Model):
    """A response with more output tokens than the bound the upstream was sent.

    The credit hold covers exactly that bound, so what lies beyond it may be paid to the
    provider and not recovered: settlement charges only what the key's limits and the wallet
    still allow and keeps the rest as the generation's ``unbilled_micros``. One row per
    incident, written off the success path; the admin index shows the last days' by provider.
    """

    created_at = models.DateTimeField(db_index=True)
    generation_id = models.CharField(max_length=40)
    provider = models.CharField(max_length=64)
    region = models.CharField(max_length=32)
    model = models.CharField(max_length=200)
    bound_tokens = models.BigIntegerField(help_text="Output tokens the upstream was allowed.")
    completion_tokens = models.BigIntegerField(help_text="Output tokens it reported.")
    unbilled_micros = models.BigIntegerField(help_text="What settlement could not charge.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.provider}/{self.region}: {self.completion_tokens} > {self.bound_tokens}"
