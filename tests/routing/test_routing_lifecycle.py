"""Deprecated models route until their sunset; after it, `model_deprecated` with a suggestion."""

from datetime import timedelta

import httpx
from django.utils import timezone

from catalog.models import Lifecycle, Model
from catalog.snapshot import mark_catalog_changed
from tests.conftest import add_model, add_offering

BODY = {"model": "demo/echo-small", "messages": [{"role": "user", "content": "hi"}]}


def _post(gateway, token, body=BODY):
    return httpx.post(
        gateway.api + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def _deprecate(days_to_sunset: int, replacement: str = "") -> None:
    Model.objects.filter(pk="demo/echo-small").update(
        lifecycle=Lifecycle.DEPRECATED,
        sunset_at=timezone.now() + timedelta(days=days_to_sunset),
        replacement=replacement,
    )
    mark_catalog_changed()


def test_deprecated_model_still_routes_before_its_sunset(gateway, catalogue, funded):
    _deprecate(30)
    assert _post(gateway, funded.token).status_code == 200
    card = httpx.get(gateway.api + "/models/demo/echo-small").json()
    assert card["lifecycle"]["status"] == "deprecated"
    assert card["lifecycle"]["sunset_at"]


def test_after_the_sunset_requests_get_model_deprecated_with_the_replacement(
    gateway, catalogue, funded, upstream
):
    successor = add_model("demo/echo-next")
    add_offering(successor, catalogue.provider)
    _deprecate(-1, replacement="demo/echo-next")
    resp = _post(gateway, funded.token)
    assert resp.status_code == 410
    error = resp.json()["error"]
    assert error["code"] == "model_deprecated"
    assert "demo/echo-next" in error["message"]
    assert upstream.records == []
    # The pseudo-models never pick a retired model.
    auto = _post(gateway, funded.token, {**BODY, "model": "lowrouter/auto"})
    assert auto.status_code == 200
    assert auto.json()["model"] == "demo/echo-next"
