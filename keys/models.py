from django.conf import settings
from django.db import models
from django.db.models import JSONField
from django.utils import timezone

from keys.tokens import digest_token, generate_token


class ApiKey(models.Model):
    """A virtual key: a bearer token plus the policy that limits what it may do."""

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=16, editable=False)
    last_four = models.CharField(max_length=4, editable=False)
    # Policy.
    region = models.SlugField(max_length=32, blank=True)
    daily_credit_limit = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    monthly_credit_limit = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    prefer_low_carbon = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Model allowlist, empty = every model. Declared last: the name shadows django.db.models
    # for the rest of the class body.
    models = JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_token})"

    @property
    def display_token(self) -> str:
        return f"{self.prefix}…{self.last_four}"

    def set_new_token(self) -> str:
        """Give the key a fresh token and return it: the only time it is ever visible."""
        token = generate_token()
        self.digest = digest_token(token)
        self.prefix = token[:10]
        self.last_four = token[-4:]
        return token
