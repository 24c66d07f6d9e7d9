"""Federated sign-in (GitHub, Google) through allauth against a fake provider on 127.0.0.1:
buttons only for configured providers, one email = one account, the country asked of new
accounts."""

from collections.abc import Iterator
from decimal import Decimal

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.contrib.sites.models import Site
from django.test import Client

from accounts.models import BillingProfile, User
from billing.ledger import ledger_sum
from billing.onboarding import create_account
from tests.accounts.auth_helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    FakeProvider,
    Identity,
    configure_providers,
    run_fake_provider,
    sign_in_with,
)

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch, settings) -> Iterator[FakeProvider]:
    configure_providers(settings, "github", "google")
    yield from run_fake_provider(monkeypatch)


@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/signup/"])
def test_provider_buttons_show_only_for_configured_providers(
    client: Client, settings, path: str
) -> None:
    configure_providers(settings)
    html = client.get(path).content.decode()
    assert "/accounts/github/login/" not in html and "/accounts/google/login/" not in html

    configure_providers(settings, "github")
    html = client.get(path).content.decode()
    assert "/accounts/github/login/" in html and "/accounts/google/login/" not in html

    # An operator can also add the client in the admin instead of the environment.
    app = SocialApp.objects.create(
        provider="google", name="Google", client_id=CLIENT_ID, secret=CLIENT_SECRET
    )
    app.sites.add(Site.objects.get_current())
    html = client.get(path).content.decode()
    assert "/accounts/github/login/" in html and "/accounts/google/login/" in html


def test_a_new_github_user_is_asked_the_country_and_lands_on_the_dashboard(
    client: Client, provider: FakeProvider
) -> None:
    response = sign_in_with(client, provider, "github", Identity("4242", "ada@example.com"))
    assert response.status_code == 302 and response["Location"] == "/accounts/3rdparty/signup/"
    form = client.get("/accounts/3rdparty/signup/").content.decode()
    assert 'name="country"' in form and "ada@example.com" in form
    assert '<header class="site">' in form

    refused = client.post("/accounts/3rdparty/signup/", {"email": "ada@example.com"})
    assert refused.status_code == 200 and b"This field is required" in refused.content
    done = client.post("/accounts/3rdparty/signup/", {"email": "ada@example.com", "country": "DE"})
    assert done.status_code == 302 and done["Location"] == "/dashboard"

    user = User.objects.get(email="ada@example.com")
    assert BillingProfile.objects.get(account=user).country == "DE"
    assert SocialAccount.objects.get(user=user).provider == "github"
    # The provider vouched for the address, so it needs no verification email.
    assert EmailAddress.objects.get(user=user).verified
    assert client.get("/dashboard").status_code == 200


def test_a_verified_google_email_signs_in_to_the_existing_account_and_its_balance(
    client: Client, provider: FakeProvider
) -> None:
    existing = create_account(
        email="grace@example.com", password=PASSWORD, credits=Decimal("25"), verified=True
    )
    identity = Identity("google-sub-1", "Grace@Example.com", verified=True)

    response = sign_in_with(client, provider, "google", identity)

    assert response.status_code == 302 and response["Location"] == "/dashboard"
    assert client.session["_auth_user_id"] == str(existing.pk)
    assert User.objects.filter(email__iexact="grace@example.com").count() == 1
    assert SocialAccount.objects.get(provider="google").user_id == existing.pk
    assert ledger_sum(existing) == 25_000_000
    # The account keeps its password: its own address was verified already.
    existing.refresh_from_db()
    assert existing.check_password(PASSWORD)

    # Next time the connected provider account alone identifies the same person.
    client.logout()
    again = sign_in_with(client, provider, "google", identity)
    assert again["Location"] == "/dashboard"
    assert client.session["_auth_user_id"] == str(existing.pk)


def test_an_email_the_provider_has_not_verified_does_not_open_an_existing_account(
    client: Client, provider: FakeProvider
) -> None:
    existing = create_account(email="linus@example.com", password=PASSWORD, verified=True)
    identity = Identity("777", "linus@example.com", verified=False)

    response = sign_in_with(client, provider, "github", identity)

    assert response["Location"] == "/accounts/3rdparty/signup/"
    assert "_auth_user_id" not in client.session
    taken = client.post(
        "/accounts/3rdparty/signup/", {"email": "linus@example.com", "country": "FI"}
    )
    assert taken.status_code == 200 and "_auth_user_id" not in client.session
    assert b"An account already exists with this email address" in taken.content
    assert not SocialAccount.objects.filter(user=existing).exists()


@pytest.mark.parametrize(
    "path, says",
    [
        ("/accounts/3rdparty/login/cancelled/", "Sign-in cancelled"),
        ("/accounts/3rdparty/login/error/", "Sign-in with a provider failed"),
    ],
)
def test_provider_dead_ends_are_in_the_site_shell_with_a_way_back(
    client: Client, path: str, says: str
) -> None:
    html = client.get(path).content.decode()
    assert '<header class="site">' in html and says in html
    assert 'href="/accounts/login/"' in html
