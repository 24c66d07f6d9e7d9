"""Fixtures for the money-in tests (helpers live in payments_helpers.py)."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from accounts.models import User
from tests.billing.payments_helpers import (
    WEBHOOK_SECRET,
    FakeStripe,
    FakeVies,
    make_stripe_handler,
    make_vies_handler,
)
from tests.factories import BuyerFactory


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free port of 127.0.0.1 in a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_stripe(settings: Any) -> Iterator[FakeStripe]:
    fake = FakeStripe()
    with serving(make_stripe_handler(fake)) as url:
        fake.url = url
        settings.STRIPE_SECRET_KEY = "sk_test_x"
        settings.STRIPE_API_BASE = fake.url
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        yield fake


@pytest.fixture
def fake_vies(settings: Any) -> Iterator[FakeVies]:
    """The VIES the default checker asks, played on 127.0.0.1."""
    fake = FakeVies()
    with serving(make_vies_handler(fake)) as url:
        fake.url = url
        settings.LOWROUTER_VIES_URL = url
        yield fake


@pytest.fixture(autouse=True)
def _webhook_secret(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET


@pytest.fixture
def buyer(db: None) -> User:
    return BuyerFactory()
