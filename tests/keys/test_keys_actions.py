"""Keys: shown once, stored as a digest, every change audited, effective on the next request."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import AuditEntry
from keys.actions import KeyPolicyError, create_key, revoke_key, update_key
from keys.auth import AuthError, authenticate
from keys.models import ApiKey
from keys.tokens import digest_token
from tests.factories import AccountFactory


@pytest.fixture
def user(db):
    return AccountFactory(email="owner@example.com", credits=Decimal(10))


def test_token_is_long_prefixed_and_stored_only_as_digest(user):
    key, token = create_key(account=user, name="prod-api")
    assert token.startswith("lr-sk-") and len(token) >= 40
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.digest == digest_token(token)
    assert token not in str(ApiKey.objects.filter(pk=key.pk).values().first())
    assert stored.display_token == token[:10] + "…" + token[-4:]


def test_create_key_command_prints_the_token_alone(user):
    out = StringIO()
    call_command("create_key", user.email, "--name", "cli", "--daily-limit", "5", stdout=out)
    token = out.getvalue().strip()
    assert "\n" not in token
    assert authenticate(f"Bearer {token}").daily_credit_limit == Decimal("5.00")


def test_negative_or_non_numeric_limits_are_refused(user):
    with pytest.raises(KeyPolicyError):
        create_key(account=user, name="bad", daily_credit_limit=Decimal(-1))
    with pytest.raises(KeyPolicyError):
        create_key(account=user, name="bad", monthly_credit_limit=Decimal("NaN"))


def test_edits_and_revocation_are_audited_and_effective_immediately(user):
    key, token = create_key(account=user, name="k")
    update_key(key, daily_credit_limit=Decimal("3"), region="eu-west")
    ctx = authenticate(f"Bearer {token}")
    assert ctx.region == "eu-west" and ctx.daily_credit_limit == Decimal("3.00")
    update_key(key, enabled=False)
    with pytest.raises(AuthError) as exc:
        authenticate(f"Bearer {token}")
    assert exc.value.code == "key_disabled"
    revoke_key(key)
    with pytest.raises(AuthError) as exc:
        authenticate(f"Bearer {token}")
    assert exc.value.code == "invalid_api_key"
    actions = list(
        AuditEntry.objects.filter(target=f"key:{key.pk}").values_list("action", flat=True)
    )
    assert sorted(actions) == ["key.create", "key.revoke", "key.update", "key.update"]
    edit = AuditEntry.objects.filter(action="key.update").order_by("id").first()
    assert edit.changes["region"] == ["", "eu-west"]


def test_admin_shows_a_new_token_once_and_never_again(admin_client, user):
    resp = admin_client.post(
        "/admin/keys/apikey/add/",
        {"account": user.pk, "name": "from-admin", "models": "[]", "region": ""},
        follow=True,
    )
    assert resp.status_code == 200
    key = ApiKey.objects.get(name="from-admin")
    shown = [str(m) for m in resp.context["messages"]]
    assert any("lr-sk-" in m for m in shown)
    page = admin_client.get(f"/admin/keys/apikey/{key.pk}/change/").content.decode()
    assert key.digest not in page
    token = next(m for m in shown if "lr-sk-" in m).split(": ", 1)[1]
    assert token not in page
