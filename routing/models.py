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
