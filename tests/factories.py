"""factory-boy factories for what the tests build again and again, and the suite's personas.

Money goes through the same functions production uses: an account's credit is granted through
the ledger (``billing.onboarding.create_account``), a key is made by ``keys.actions.create_key``,
so balance == sum of ledger entries holds for every object built here.

Personas (the few people the suite keeps meeting, as in healthchecks' hc/test.py):

- the customer: a verified account with 100 credits and one key (``make_funded``, the
  ``funded`` fixture), dev@example.com;
- the buyer: a verified account with a French billing profile and no credit yet, who tops up
  through Stripe (``BuyerFactory``, the ``buyer`` fixture of the billing tests);
- the operator: staff who signs refunds, adjustments and re-issued invoices (``make_operator``,
  the ``operator`` fixture), op@example.com;
- the admin: a superuser signed in to the admin site (``make_admin``, the ``admin_client``
  fixture), ops@example.com.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import factory
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.test import Client
from django.utils import timezone
from factory.django import DjangoModelFactory

from accounts.models import BillingProfile, User
from billing.models import Campaign, TopUp, VatTreatment
from billing.onboarding import create_account
from keys.actions import create_key
from keys.models import ApiKey

M = 1_000_000  # micro-credits per credit
TEST_PASSWORD = "pw-for-tests-only"


class UserFactory(DjangoModelFactory):
    """A user, which is also the billing account; no wallet until something posts to it."""

    class Meta:
        model = User
        # Related objects (profile, email address) point at the user; it needs no second save.
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = TEST_PASSWORD

    class Params:
        staff = factory.Trait(is_staff=True)
        superuser = factory.Trait(is_staff=True, is_superuser=True)

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        return model_class.objects.create_user(*args, **kwargs)  # hashes the password


class AccountFactory(UserFactory):
    """A verified customer whose wallet holds ``credits``, granted through the ledger."""

    credits = Decimal("100")
    verified = True

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        return create_account(
            email=kwargs["email"],
            password=kwargs["password"],
            credits=kwargs["credits"],
            verified=kwargs["verified"],
            staff=kwargs.get("is_staff", False),
        )


class BillingProfileFactory(DjangoModelFactory):
    class Meta:
        model = BillingProfile

    account = factory.SubFactory(UserFactory)
    country = "FR"
    vat_number = ""
    legal_name = ""
    address = "1 rue de Test"


class BuyerFactory(UserFactory):
    """An account that can top up: an email address (verified unless told otherwise) and a
    billing profile, French by default; no credit yet."""

    email = "buyer@example.com"

    class Params:
        country = "FR"
        vat_number = ""
        legal_name = ""
        verified = True

    profile = factory.RelatedFactory(
        BillingProfileFactory,
        factory_related_name="account",
        country=factory.SelfAttribute("..country"),
        vat_number=factory.SelfAttribute("..vat_number"),
        legal_name=factory.SelfAttribute("..legal_name"),
    )
    email_address = factory.RelatedFactory(
        "tests.factories.EmailAddressFactory",
        factory_related_name="user",
        email=factory.SelfAttribute("..email"),
        verified=factory.SelfAttribute("..verified"),
    )


class EmailAddressFactory(DjangoModelFactory):
    class Meta:
        model = EmailAddress

    user = factory.SubFactory(UserFactory)
    email = factory.SelfAttribute("user.email")
    verified = True
    primary = True


class ApiKeyFactory(DjangoModelFactory):
    """A key made by ``keys.actions.create_key``; its token, shown once, is kept on the
    instance as ``token``."""

    class Meta:
        model = ApiKey

    account = factory.SubFactory(AccountFactory)
    name = "test-key"

    @classmethod
    def _create(cls, model_class: type[ApiKey], *args: Any, **kwargs: Any) -> ApiKey:
        key, token = create_key(**kwargs)
        key.token = token
        return key


class CampaignFactory(DjangoModelFactory):
    """An activation-code campaign open for 30 days: 500 credits a code, 10 redemptions."""

    class Meta:
        model = Campaign

    name = "Launch"
    credit_micros = 500 * M
    deadline = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))
    max_redemptions = 10


class TopUpFactory(DjangoModelFactory):
    """A French customer's 10-credit top-up, sent to Stripe Checkout and not paid yet."""

    class Meta:
        model = TopUp

    account = factory.SubFactory(UserFactory)
    credits_cents = 1000
    fee_cents = 80
    vat_rate = Decimal("20")
    vat_cents = 216
    gross_cents = 1296
    vat_treatment = VatTreatment.DOMESTIC
    stripe_session_id = factory.Sequence(lambda n: f"cs_test_{n}")


# --- Personas ---------------------------------------------------------------------------------


@dataclass
class Funded:
    user: User
    key: ApiKey
    token: str


def make_funded(
    email: str = "dev@example.com", credits: Decimal = Decimal("100"), **key_policy: object
) -> Funded:
    """The customer: a verified account holding ``credits`` and one key with ``key_policy``."""
    user = AccountFactory(email=email, credits=credits)
    key = ApiKeyFactory(account=user, **key_policy)
    return Funded(user, key, key.token)


def make_operator() -> User:
    return UserFactory(email="op@example.com", staff=True)


def make_admin() -> User:
    """A superuser, with an authenticator app: staff who can move money use the admin only
    with two-factor authentication (accounts/middleware.py)."""
    user = UserFactory(email="ops@example.com", superuser=True)
    TOTP.activate(user, generate_totp_secret())
    return user


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client
