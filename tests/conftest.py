"""Shared fixtures: a live gateway served by uvicorn, the fake upstream, funded accounts, keys.

The gateway runs in this process (a uvicorn thread) so it shares the test database and the
local-memory cache on the embedded default; tests that use it need committed data, hence the
``transactional_db`` fixtures.
"""

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import uvicorn
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client

from accounts.models import User
from catalog.models import Currency, Model, Offering, Provider
from catalog.snapshot import mark_catalog_changed, reset_snapshot
from devtools.demo_upstream import DemoConfig, DemoUpstream
from lowrouter import asyncdb
from routing import http_client
from routing import upstream as upstream_client
from routing.health import reset_health
from tests.billing.payments_helpers import (
    WEBHOOK_SECRET,
    FakeStripe,
    FakeVies,
    make_stripe_handler,
    make_vies_handler,
)
from tests.factories import Funded, make_admin, make_funded, make_operator, signed_in

ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres")
ON_REDIS = bool(os.environ.get("REDIS_URL"))
needs_postgres = pytest.mark.skipif(not ON_POSTGRES, reason="needs DATABASE_URL (PostgreSQL)")
needs_redis = pytest.mark.skipif(not ON_REDIS, reason="needs REDIS_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveGateway:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            "lowrouter.asgi:application",
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def start(self) -> "LiveGateway":
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        # Close the pooled upstream and database connections on their own loop before it ends.
        for loop in {*http_client.pool_loops(), *asyncdb.connection_loops()}:
            if loop.is_running():
                for close in (upstream_client.close_sessions, asyncdb.close_loop_connections):
                    future = asyncio.run_coroutine_threadsafe(close(), loop)
                    future.result(timeout=5)
        self.server.should_exit = True
        self.thread.join(timeout=10)


def end_other_sessions() -> None:
    """Server worker threads keep their own connections; PostgreSQL refuses to drop the test
    database while they exist, so end them once the server is gone."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
def worker_sessions_ended() -> Iterator[None]:
    """For tests whose event loops do database work in worker threads: those threads keep
    sessions the test database cannot be dropped with, so they are ended after the test."""
    yield
    end_other_sessions()


@pytest.fixture(scope="session")
def gateway(django_db_setup, django_db_blocker) -> Iterator[LiveGateway]:
    live = LiveGateway().start()
    yield live
    live.stop()
    with django_db_blocker.unblock():
        end_other_sessions()


@pytest.fixture(autouse=True, scope="session")
def _a_clean_cache() -> None:
    """Redis outlives a run: rate-limit counters (sign-up, resend) and cached copies left by an
    earlier run on the same database number must not decide this one's answers."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True, scope="session")
def _celery_runs_tasks_inline() -> None:
    """With REDIS_URL set, tasks would go to a broker no worker reads in tests: run them inline."""
    from lowrouter.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True


@pytest.fixture(autouse=True)
def _fresh_routing_health() -> Iterator[None]:
    """Slot health outlives a request on purpose; a test starts with every slot healthy."""
    reset_health()
    yield


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[DemoUpstream]:
    with DemoUpstream(DemoConfig()) as server:
        yield server


@pytest.fixture
def upstream(upstream_server: DemoUpstream) -> Iterator[DemoUpstream]:
    """The fake upstream, reset to a well-behaved configuration for each test."""
    upstream_server.config.__dict__.update(DemoConfig().__dict__)
    upstream_server.records.clear()
    yield upstream_server
    upstream_server.config.__dict__.update(DemoConfig().__dict__)


def add_provider(
    provider_id: str,
    base_url: str,
    *,
    currency: str = Currency.EUR,
    requires_credential: bool = False,
) -> Provider:
    provider, _ = Provider.objects.update_or_create(
        id=provider_id,
        defaults={
            "name": provider_id.title(),
            "base_url": base_url,
            "billing_currency": currency,
            "requires_credential": requires_credential,
        },
    )
    return provider


def add_model(
    model_id: str,
    *,
    active_params_b: Decimal | None = Decimal("3"),
    max_output_tokens: int = 1000,
    platform_fee: Decimal = Decimal("0.50"),
    **fields: object,
) -> Model:
    model, _ = Model.objects.update_or_create(
        id=model_id,
        defaults={
            "display_name": model_id,
            "owner": model_id.split("/")[0],
            "context_window": 8192,
            "max_output_tokens": max_output_tokens,
            "active_params_b": active_params_b,
            "platform_fee_per_1m": platform_fee,
            "supports_tools": True,
            **fields,
        },
    )
    return model


def add_offering(
    model: Model,
    provider: Provider,
    *,
    region: str = "local",
    prompt: Decimal = Decimal("1.00"),
    completion: Decimal = Decimal("2.00"),
    cached: Decimal | None = Decimal("0.25"),
    upstream_model: str = "demo-echo",
) -> Offering:
    offering, _ = Offering.objects.update_or_create(
        model=model,
        provider=provider,
        region=region,
        defaults={
            "upstream_model": upstream_model,
            "prompt_price": prompt,
            "completion_price": completion,
            "cached_prompt_price": cached,
        },
    )
    return offering


@dataclass
class Catalogue:
    provider: Provider
    model: Model
    offering: Offering


@pytest.fixture
def catalogue(transactional_db, upstream: DemoUpstream) -> Iterator[Catalogue]:
    """One EUR-priced model served by the fake upstream in region `local`."""
    provider = add_provider("demo", upstream.base_url)
    model = add_model("demo/echo-small")
    offering = add_offering(model, provider)
    mark_catalog_changed()
    yield Catalogue(provider, model, offering)
    reset_snapshot()


@pytest.fixture
def funded(transactional_db) -> Funded:
    """The customer persona (tests/factories.py), committed for the live gateway."""
    return make_funded()


@pytest.fixture
def operator(db: None) -> User:
    """The operator persona: staff who signs refunds, adjustments and re-issues."""
    return make_operator()


@pytest.fixture
def admin_client(db: None) -> Client:
    """The admin persona, signed in to the admin site."""
    return signed_in(make_admin())


StaffClientMaker = Callable[..., tuple[User, Client]]


@pytest.fixture
def staff_client(db: None) -> StaffClientMaker:
    """Logs in a staff user (not a superuser) holding only the given "app.codename"
    permissions, plus every view permission when ``view_everything`` is set."""

    def make(*perms: str, view_everything: bool = False) -> tuple[User, Client]:
        user = User.objects.create_user(f"staff{User.objects.count()}@example.com", is_staff=True)
        if view_everything:
            user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        # Staff who can move money use the admin only with two-factor authentication.
        TOTP.activate(user, generate_totp_secret())
        client = Client()
        client.force_login(user)
        return user, client

    return make


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Transactional tests flush every table, including rows that data migrations ship (eco
    methodologies, grid regions, VAT rates). Restore them after each such test, so no test's
    outcome depends on the order tests run in."""
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is None:
            continue
        marker = item.get_closest_marker("django_db")
        transactional = "transactional_db" in names or (
            marker is not None and marker.kwargs.get("transaction")
        )
        if transactional and "django_db_serialized_rollback" not in names:
            names.append("django_db_serialized_rollback")


# --- Fake Stripe and VIES on 127.0.0.1 (money-in tests and the console) -------------------


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
