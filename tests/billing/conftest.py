"""Fixtures for the money-in tests (helpers live in payments_helpers.py; the fake Stripe and
VIES servers are in the root conftest, the console uses them too)."""

from typing import Any

import pytest

from accounts.models import User
from tests.billing.payments_helpers import WEBHOOK_SECRET
from tests.factories import BuyerFactory


@pytest.fixture(autouse=True)
def _webhook_secret(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET


@pytest.fixture
def buyer(db: None) -> User:
    return BuyerFactory()
