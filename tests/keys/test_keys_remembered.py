"""A key the gateway has served before is not read again on PostgreSQL (the reservation checks
its row instead), so a change made to the row by any means, signals or none, must still apply to
the very next request. On SQLite the key is read on every request; both passes run this file."""

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from accounts.models import User
from keys.models import ApiKey
from tests.routing.test_routing_errors import BODY, assert_error


@pytest.fixture
def post(gateway, catalogue, funded):
    def _post(model: str = "demo/echo-small") -> httpx.Response:
        return httpx.post(
            gateway.api + "/chat/completions",
            json={**BODY, "model": model},
            headers={"Authorization": f"Bearer {funded.token}"},
            timeout=10,
        )

    assert _post().status_code == 200  # the key is now one this process has seen
    return _post


def test_a_model_allowlist_set_behind_the_apps_back_applies_at_once(post, funded):
    ApiKey.objects.filter(pk=funded.key.pk).update(models=["demo/some-other-model"])
    assert_error(post(), 403, "model_not_allowed")
    ApiKey.objects.filter(pk=funded.key.pk).update(models=[])
    assert post().status_code == 200


def test_a_key_that_expired_since_it_was_seen_is_refused(post, funded):
    ApiKey.objects.filter(pk=funded.key.pk).update(
        expires_at=timezone.now() + timedelta(milliseconds=300)
    )
    assert post().status_code == 200
    ApiKey.objects.filter(pk=funded.key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(post(), 401, "key_expired")


def test_a_deactivated_account_is_refused_on_the_next_request(post, funded):
    User.objects.filter(pk=funded.user.pk).update(is_active=False)
    assert_error(post(), 401, "invalid_api_key")


def test_a_deleted_key_is_refused_on_the_next_request(post, funded):
    ApiKey.objects.filter(pk=funded.key.pk).delete()
    assert_error(post(), 401, "invalid_api_key")
