"""Sign-up with a country, email verification, sign-in while unverified, resending the link,
and the password rules, through django-allauth in the site's own pages."""

import re
import time

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from accounts.models import BillingProfile, User

PASSWORD = "correct horse battery staple 42"
pytestmark = pytest.mark.django_db


def sign_up(client: Client, email: str, password: str = PASSWORD, country: str = "FR"):
    return client.post(
        "/accounts/signup/",
        {"email": email, "country": country, "password1": password, "password2": password},
    )


def link_in(message: mail.EmailMessage) -> str:
    found = re.search(r"https?://\S+/accounts/confirm-email/\S+", message.body)
    assert found, message.body
    return found.group(0)


def test_sign_up_keeps_the_country_and_sends_a_verification_link_on_the_site_url(
    client: Client, settings
) -> None:
    settings.SITE_URL = "https://app.lowrouter.test"
    assert sign_up(client, "New@Example.com").status_code == 302
    user = User.objects.get(email="new@example.com")
    assert BillingProfile.objects.get(account=user).country == "FR"
    assert not EmailAddress.objects.get(user=user).verified
    (message,) = mail.outbox
    assert message.subject.startswith("[LowRouter] ")
    assert "LowRouter" in message.body and "example.com" not in message.body.replace(
        "new@example.com", ""
    )
    link = link_in(message)
    assert link.startswith("https://app.lowrouter.test/accounts/confirm-email/")
    assert client.post(link.split("app.lowrouter.test", 1)[1]).status_code == 302
    assert EmailAddress.objects.get(user=user).verified


def test_a_country_is_required(client: Client) -> None:
    response = sign_up(client, "nocountry@example.com", country="")
    assert response.status_code == 200 and b"This field is required" in response.content
    assert not User.objects.filter(email="nocountry@example.com").exists()


def test_an_unverified_customer_can_sign_in_and_is_told_what_waits(client: Client) -> None:
    sign_up(client, "late@example.com")
    client.logout()
    response = client.post("/accounts/login/", {"login": "late@example.com", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/dashboard"
    topup = client.get("/billing/topup").content.decode()
    assert "Verify your email address" in topup


@pytest.mark.parametrize(
    "password, why",
    [
        ("short pass1", "at least 12 characters"),
        ("aaaaaaaaaaaaaaaa", "repeats too few characters"),
        ("qwertyuiop1234", "run of keys"),
        ("abcdefghijklmnop", "run of keys"),
        ("password123456", "common password"),
        ("1234567890123", "entirely numeric"),
        ("my lowrouter password", "product's name"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(client: Client, password: str, why: str):
    response = sign_up(client, "weak@example.com", password=password)
    assert response.status_code == 200
    assert why in response.content.decode().replace("&#x27;", "'")


def test_a_long_passphrase_has_no_low_maximum(client: Client) -> None:
    long = "a long passphrase of many words, " * 6
    assert len(long) > 190
    assert sign_up(client, "long@example.com", password=long).status_code == 302


def test_a_verification_link_expires_after_24_hours(client: Client, settings, monkeypatch):
    assert settings.ACCOUNT_EMAIL_CONFIRMATION_EXPIRE_DAYS == 1
    sign_up(client, "slow@example.com")
    path = "/accounts/" + link_in(mail.outbox[0]).split("/accounts/", 1)[1]
    later = time.time() + 25 * 3600
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)
    client.post(path)
    assert not EmailAddress.objects.get(email="slow@example.com").verified


def test_resending_answers_the_same_for_anyone_and_is_rate_limited(client: Client) -> None:
    sign_up(client, "again@example.com")
    client.logout()
    mail.outbox.clear()
    unknown = client.post("/accounts/resend-verification/", {"email": "nobody@example.com"})
    known = client.post("/accounts/resend-verification/", {"email": "again@example.com"})
    assert unknown.status_code == known.status_code == 200
    assert b"a new link is on its way" in unknown.content and b"on its way" in known.content
    assert [m.to for m in mail.outbox] == [["again@example.com"]]
    again = client.post("/accounts/resend-verification/", {"email": "again@example.com"})
    assert again.status_code == 429 and len(mail.outbox) == 1


def test_register_is_the_sign_up_page(client: Client) -> None:
    response = client.get("/register")
    assert response.status_code == 302 and response["Location"] == "/accounts/signup/"


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/login/",
        "/accounts/signup/",
        "/accounts/password/reset/",
        "/accounts/resend-verification/",
    ],
)
def test_every_auth_page_is_in_the_site_shell(client: Client, path: str) -> None:
    html = client.get(path).content.decode()
    assert '<header class="site">' in html and "/static/css/site.css" in html
    assert "Menu:" not in html  # the library's bare default layout
