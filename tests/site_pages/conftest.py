"""Legal and trust page fixtures: the console's small catalogue, a signed-in visitor."""

from pathlib import Path

import pytest
from django.test import Client

from accounts.models import User
from catalog.catalogue_sync import sync_catalogue
from catalog.snapshot import reset_snapshot

CATALOGUE = Path(__file__).resolve().parents[1] / "console" / "catalogue.yaml"


@pytest.fixture
def catalogue(db: None) -> None:
    sync_catalogue(CATALOGUE)
    reset_snapshot()


@pytest.fixture
def signed_in(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_user("ada@example.com", password="x" * 16))
    return client
