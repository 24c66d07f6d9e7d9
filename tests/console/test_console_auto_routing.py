"""The auto-routing defaults page: saving them (audited, applied to the next request's
routing) and the preview of ``lowrouter/auto``."""

import re

import pytest

from accounts.models import AuditEntry
from routing.models import AccountRoutingPolicy
from routing.policies import get_policy
from tests.console.conftest import Customer

pytestmark = pytest.mark.django_db


def save(customer: Customer, **fields: object):
    return customer.client.post("/dashboard/auto-routing", fields)


def winner(html: str) -> str:
    found = re.search(r"would pick <strong>[^<]+</strong> at <strong>([^<]+)</strong>", html)
    assert found, html
    return found.group(1)


def test_saved_defaults_reach_the_router_and_the_audit_log(customer: Customer) -> None:
    response = save(customer, provider_denylist=["demo"], prefer_low_carbon="on")
    assert response.status_code == 302
    row = AccountRoutingPolicy.objects.get(account=customer.user)
    assert row.provider_denylist == ["demo"] and row.prefer_low_carbon
    policy = get_policy(customer.user.pk)
    assert policy.provider_denylist == ("demo",) and policy.prefer_low_carbon
    entry = AuditEntry.objects.get(action="routing_defaults.update", account=customer.user)
    assert entry.changes["provider_denylist"] == [None, ["demo"]]


def test_the_preview_follows_the_defaults(customer: Customer) -> None:
    # In the test catalogue only the demo provider is routable (the others have no credential).
    assert winner(customer.client.get("/dashboard/auto-routing").content.decode()) == (
        "demo / local"
    )
    save(customer, provider_denylist=["demo"])
    page = customer.client.get("/dashboard/auto-routing").content.decode()
    assert "No model can serve" in page and "has no credential configured" in page


def test_a_provider_both_allowed_and_denied_is_a_form_error(customer: Customer) -> None:
    response = save(customer, provider_allowlist=["demo"], provider_denylist=["demo"])
    assert response.status_code == 400 and "both allowed and denied" in response.content.decode()
    response = save(customer, fixed_provider="demo", provider_denylist=["demo"])
    assert response.status_code == 400 and "excluded by the lists" in response.content.decode()
    assert not AccountRoutingPolicy.objects.filter(account=customer.user).exists()


def test_keys_that_override_the_defaults_are_listed(customer: Customer) -> None:
    customer.key.region = "eu-west"
    customer.key.save()
    page = customer.client.get("/dashboard/auto-routing").content.decode()
    assert "pinned to eu-west" in page
