"""Two-factor authentication (allauth's TOTP): optional for customers, required before staff
who can reach money actions may use the admin, whose sign-in is allauth's."""

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.test import Client

from accounts.models import User
from billing.onboarding import create_account
from tests.accounts.auth_helpers import totp_code

PASSWORD = "correct horse battery staple 42"
pytestmark = pytest.mark.django_db


def grant(user: User, codename: str) -> None:
    # The money permissions may not exist yet: create the one the test needs on billing.
    wallet = ContentType.objects.get(app_label="billing", model="wallet")
    perm, _ = Permission.objects.get_or_create(
        codename=codename, content_type=wallet, defaults={"name": codename}
    )
    user.user_permissions.add(perm)


def staff(email: str, *, money: bool = False, superuser: bool = False) -> User:
    user = create_account(email=email, password=PASSWORD, verified=True, staff=True)
    if superuser:
        user.is_superuser = True
        user.save(update_fields=["is_superuser"])
    if money:
        grant(user, "adjust_wallet")
    return User.objects.get(pk=user.pk)  # no cached permissions


def sign_in_to_admin(client: Client, email: str):
    """Open /admin/, get sent to the site's sign-in page, sign in there."""
    admin = client.get("/admin/")
    assert admin.status_code == 302 and admin["Location"].startswith("/admin/login/")
    login = client.get(admin["Location"])
    assert login.status_code == 302 and login["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    return client.post(login["Location"], {"login": email, "password": PASSWORD})


def open_totp_setup(client: Client):
    """allauth asks for the password again before an authenticator is added."""
    ask = client.get("/accounts/2fa/totp/activate/")
    assert ask.status_code == 302 and ask["Location"].startswith("/accounts/reauthenticate/")
    confirmed = client.post(ask["Location"], {"password": PASSWORD})
    assert confirmed["Location"] == "/accounts/2fa/totp/activate/"
    return client.get("/accounts/2fa/totp/activate/")


@pytest.mark.parametrize("kind", ["money_permission", "superuser"])
def test_staff_who_can_move_money_must_set_up_totp_before_using_the_admin(
    client: Client, kind: str
) -> None:
    user = staff("ops@example.com", money=kind == "money_permission", superuser=kind == "superuser")
    assert user.can_reach_money_actions()

    signed_in = sign_in_to_admin(client, user.email)
    assert signed_in.status_code == 302 and signed_in["Location"] == "/admin/"
    for path in ("/admin/", "/admin/billing/wallet/"):
        refused = client.get(path)
        assert refused.status_code == 302, path
        assert refused["Location"] == "/accounts/2fa/totp/activate/"

    page = open_totp_setup(client)
    assert page.status_code == 200 and b"turn on two-factor authentication" in page.content
    secret = page.context["form"].secret
    activated = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert activated.status_code == 302
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    assert client.get("/admin/").status_code == 200


def test_staff_with_totp_are_asked_the_code_before_the_admin_opens(client: Client) -> None:
    user = staff("treasurer@example.com", money=True)
    secret = generate_totp_secret()
    TOTP.activate(user, secret)

    signed_in = sign_in_to_admin(client, user.email)
    assert signed_in.status_code == 302 and signed_in["Location"] == "/accounts/2fa/authenticate/"
    # The password alone opens nothing.
    assert client.get("/admin/")["Location"].startswith("/admin/login/")

    wrong = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    if wrong.status_code == 302:  # one time in a million the wrong code is the right one
        pytest.skip("000000 happened to be the current code")
    assert wrong.status_code == 200 and b"Incorrect code" in wrong.content

    done = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert done.status_code == 302 and done["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_staff_without_money_permissions_use_the_admin_without_totp(client: Client) -> None:
    user = staff("catalogue@example.com")
    assert not user.can_reach_money_actions()
    assert sign_in_to_admin(client, user.email)["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_customer_can_turn_on_totp_from_the_settings_and_is_then_asked_for_it(
    client: Client,
) -> None:
    create_account(email="careful@example.com", password=PASSWORD, verified=True)
    client.post("/accounts/login/", {"login": "careful@example.com", "password": PASSWORD})
    settings_page = client.get("/dashboard/settings").content.decode()
    assert 'href="/accounts/2fa/"' in settings_page and "Two-factor authentication: off" in (
        settings_page
    )
    secret = open_totp_setup(client).context["form"].secret
    client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert "Two-factor authentication: on" in client.get("/dashboard/settings").content.decode()

    client.post("/accounts/logout/")
    signed_in = client.post(
        "/accounts/login/", {"login": "careful@example.com", "password": PASSWORD}
    )
    assert signed_in["Location"] == "/accounts/2fa/authenticate/"
    done = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert done["Location"] == "/dashboard"
