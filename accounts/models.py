from typing import ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra: object) -> "User":
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: object) -> "User":
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> "User":
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create(email, password, **extra)


# Admin actions that move money (billing's permissions; a codename that does not exist yet is
# simply never granted).
MONEY_PERMISSIONS = ("billing.adjust_wallet", "billing.refund_topup", "billing.issue_codes")


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in. The email address is the identifier; there is no username.

    A user is also the billing account: credits, keys and generations hang off it.
    """

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    def __str__(self) -> str:
        return self.email

    def can_reach_money_actions(self) -> bool:
        """Staff who could credit, refund or issue codes in the admin (these need TOTP)."""
        if not (self.is_active and self.is_staff):
            return False
        return self.is_superuser or any(self.has_perm(perm) for perm in MONEY_PERMISSIONS)


class BillingProfile(models.Model):
    """Who the invoices are made out to, and the facts VAT depends on (country, VAT number)."""

    account = models.OneToOneField(User, on_delete=models.CASCADE, related_name="billing_profile")
    legal_name = models.CharField(max_length=200, blank=True)
    address = models.TextField(blank=True)
    # ISO 3166-1 alpha-2, upper case ("FR", "DE", "US"). Greece is "GR" here; VAT numbers use "EL".
    country = models.CharField(max_length=2, blank=True)
    vat_number = models.CharField(max_length=32, blank=True)
    # Set when the VAT number was confirmed by VIES; reverse charge needs a valid number.
    vat_number_validated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"billing profile of {self.account_id}"


class AuditEntry(models.Model):
    """Append-only record of who changed what: key edits, operator money actions, re-issues."""

    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_actions"
    )
    account = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "-created_at"])]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.action} on {self.target} by {self.actor_id}"


class Preferences(models.Model):
    """What a customer chose in the settings beyond billing: the eco baseline and emails."""

    account = models.OneToOneField(User, on_delete=models.CASCADE, related_name="preferences")
    # The model the dashboard's eco panel compares against; empty: the operator's default.
    eco_baseline_model = models.CharField(max_length=200, blank=True)
    # Email when the balance falls below this many credits (once per crossing); None: never.
    low_balance_threshold = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True
    )
    # Set when the alert was sent, cleared when the balance is back above the threshold.
    low_balance_alerted = models.BooleanField(default=False)
    monthly_summary = models.BooleanField(default=True)
    # The first day of the last month whose summary was sent (the task runs at most once each).
    monthly_summary_sent_for = models.DateField(null=True, blank=True)
    invoice_emails = models.BooleanField(default=True)
    price_notices = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"preferences of {self.account_id}"

    @classmethod
    def of(cls, account_id: int) -> "Preferences":
        return cls.objects.get_or_create(account_id=account_id)[0]
