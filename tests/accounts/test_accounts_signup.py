"""Email + password sign-up, email verification and login through django-allauth."""

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail

from accounts.models import User

PASSWORD = "correct horse battery staple 42"


@pytest.mark.django_db
def test_signup_sends_a_verification_email_and_confirming_it_allows_login(client):
    resp = client.post(
        "/accounts/signup/",
        {"email": "New@Example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert resp.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert not hasattr(user, "username")
    assert not EmailAddress.objects.get(user=user).verified
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^\s]+/accounts/confirm-email/[^\s]+", mail.outbox[0].body)
    assert link
    path = "/accounts/" + link.group(0).split("/accounts/", 1)[1]
    assert client.post(path).status_code == 302
    assert EmailAddress.objects.get(user=user).verified
    client.logout()
    resp = client.post("/accounts/login/", {"login": "new@example.com", "password": PASSWORD})
    assert resp.status_code == 302
    assert client.get("/accounts/email/").status_code == 200


@pytest.mark.django_db
def test_unverified_user_cannot_log_in(client):
    client.post(
        "/accounts/signup/",
        {"email": "late@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    client.logout()
    resp = client.post("/accounts/login/", {"login": "late@example.com", "password": PASSWORD})
    # Mandatory verification: allauth sends the user to the "verify your email" page.
    assert resp.status_code == 302
    assert "confirm-email" in resp["Location"] or "verification" in resp["Location"]
