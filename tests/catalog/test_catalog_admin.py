"""The catalogue admin: credentials are write-only, writes bump the snapshot version."""

import pytest
from django.core.cache import cache
from django.test import Client

from catalog.credentials import resolve_credential
from catalog.models import Offering, Provider
from catalog.snapshot import VERSION_CACHE_KEY
from tests.conftest import make_operator

pytestmark = pytest.mark.django_db

SECRET = "sk-live-very-secret-value-123456"


@pytest.fixture
def admin_client() -> Client:
    user = make_operator()
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def provider() -> Provider:
    return Provider.objects.create(
        id="acme",
        name="Acme",
        base_url="https://api.acme.example/v1",
        billing_currency="EUR",
    )


def form_data(provider: Provider, **extra: str) -> dict[str, str]:
    data = {
        "id": provider.id,
        "name": provider.name,
        "wire_format": "openai",
        "base_url": provider.base_url,
        "credential_env": "",
        "requires_credential": "on",
        "billing_currency": "EUR",
        "status": "ok",
        "data_handling": "{}",
        "price_list_url": "",
        "offerings-TOTAL_FORMS": "0",
        "offerings-INITIAL_FORMS": "0",
        "offerings-MIN_NUM_FORMS": "0",
        "offerings-MAX_NUM_FORMS": "1000",
    }
    data.update(extra)
    return data


def test_a_credential_entered_in_the_admin_is_stored_encrypted_and_never_rendered(
    admin_client: Client, provider: Provider, django_capture_on_commit_callbacks
) -> None:
    url = f"/admin/catalog/provider/{provider.id}/change/"
    version = cache.get(VERSION_CACHE_KEY) or 0
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, form_data(provider, credential=SECRET))
    assert response.status_code == 302, response.content[:2000]
    provider.refresh_from_db()
    assert SECRET not in provider.credential_encrypted
    assert resolve_credential(provider) == SECRET
    assert (cache.get(VERSION_CACHE_KEY) or 0) > version
    page = admin_client.get(url).content.decode()
    assert SECRET not in page
    assert provider.credential_encrypted not in page
    listing = admin_client.get("/admin/catalog/provider/").content.decode()
    assert SECRET not in listing and "icon-yes" in listing


def test_an_empty_credential_field_keeps_the_stored_key(
    admin_client: Client, provider: Provider
) -> None:
    url = f"/admin/catalog/provider/{provider.id}/change/"
    admin_client.post(url, form_data(provider, credential=SECRET))
    admin_client.post(url, form_data(provider, name="Acme renamed"))
    provider.refresh_from_db()
    assert provider.name == "Acme renamed"
    assert resolve_credential(provider) == SECRET
    admin_client.post(url, form_data(provider, clear_credential="on"))
    provider.refresh_from_db()
    assert resolve_credential(provider) is None


def test_soft_disable_and_enable_actions(
    admin_client: Client, provider: Provider, django_capture_on_commit_callbacks
) -> None:
    version = cache.get(VERSION_CACHE_KEY) or 0
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/catalog/provider/",
            {"action": "soft_disable", "_selected_action": [provider.id]},
        )
    provider.refresh_from_db()
    assert provider.status == "unavailable"
    assert (cache.get(VERSION_CACHE_KEY) or 0) > version
    admin_client.post(
        "/admin/catalog/provider/", {"action": "enable", "_selected_action": [provider.id]}
    )
    provider.refresh_from_db()
    assert provider.status == "ok"


def test_offering_soft_disable_action(admin_client: Client, provider: Provider) -> None:
    from catalog.models import Model

    model = Model.objects.create(
        id="acme/m", display_name="M", owner="acme", context_window=1000, max_output_tokens=100
    )
    offering = Offering.objects.create(
        model=model,
        provider=provider,
        region="eu-west",
        upstream_model="m",
        prompt_price=1,
        completion_price=2,
    )
    admin_client.post(
        "/admin/catalog/offering/",
        {"action": "soft_disable", "_selected_action": [offering.pk]},
    )
    offering.refresh_from_db()
    assert not offering.enabled
