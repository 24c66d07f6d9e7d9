"""Routing fixtures: every test starts with healthy upstreams and no account policies.

Slot health is shared state that outlives a request on purpose (a failing provider is skipped
by the next request); between tests it must not, or one test's injected 5xx would make the
next test's only provider look unhealthy.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest

from catalog.snapshot import mark_catalog_changed, reset_snapshot
from devtools.demo_upstream import DemoConfig, DemoUpstream
from routing.health import reset_health
from routing.policies import reset_policies
from tests.conftest import add_model, add_offering, add_provider
from tests.factories import Funded, make_funded


@pytest.fixture(autouse=True)
def fresh_routing_state() -> Iterator[None]:
    reset_health()
    reset_policies()
    yield
    reset_health()


# --- A fleet of fake providers: each DemoUpstream instance is its own provider ---------------

FLEET = {
    # provider: (region, price per 1M tokens, prompt and completion alike)
    "alpha": ("eu-west", "1.00"),
    "beta": ("eu-west", "1.50"),
    "delta": ("eu-west", "2.00"),
    "gamma": ("eu-north", "3.00"),
}
FLEET_MODEL = "fleet/chat"


@dataclass
class Fleet:
    servers: dict[str, DemoUpstream]
    funded: Funded
    url: str

    def post(self, body: dict, headers: dict | None = None) -> httpx.Response:
        payload = {"model": FLEET_MODEL, "messages": [{"role": "user", "content": "hi"}], **body}
        h = {"Authorization": f"Bearer {self.funded.token}", **(headers or {})}
        return httpx.post(self.url + "/chat/completions", json=payload, headers=h, timeout=20)

    def served(self) -> dict[str, int]:
        return {name: len(s.records) for name, s in self.servers.items() if s.records}

    def trace(self, resp: httpx.Response) -> dict:
        gen_id = resp.headers["X-LowRouter-Generation-ID"]
        return self.generation(gen_id)["routing_trace"]

    def generation(self, gen_id: str) -> dict:
        h = {"Authorization": f"Bearer {self.funded.token}"}
        return httpx.get(f"{self.url}/generation/{gen_id}", headers=h, timeout=10).json()


@pytest.fixture(scope="session")
def fleet_servers() -> Iterator[dict[str, DemoUpstream]]:
    servers = {name: DemoUpstream(DemoConfig()).start() for name in FLEET}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def fleet(gateway, transactional_db, fleet_servers) -> Iterator[Fleet]:
    """Four providers on four live fake upstreams: alpha, beta and delta in eu-west (cheapest
    first), gamma in eu-north; one model served by all of them, at no platform fee."""
    for server in fleet_servers.values():
        server.config.__dict__.update(DemoConfig().__dict__)
        server.records.clear()
    model = add_model(FLEET_MODEL, platform_fee=Decimal("0"))
    for name, (region, price) in FLEET.items():
        provider = add_provider(name, fleet_servers[name].base_url)
        add_offering(
            model, provider, region=region, prompt=Decimal(price), completion=Decimal(price)
        )
    mark_catalog_changed()
    yield Fleet(fleet_servers, make_funded(email="fleet@example.com"), gateway.api)
    for server in fleet_servers.values():
        server.config.__dict__.update(DemoConfig().__dict__)
    reset_snapshot()
