"""Slot health is shared by every web process: a failure seen by one server is skipped by
another. Two real uvicorn processes on the test database and the same Redis."""

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ON_POSTGRES, ON_REDIS
from tests.processes import GatewayProcess, shared_database_url, start_gateway_process
from tests.routing.conftest import FLEET_MODEL

pytestmark = pytest.mark.skipif(
    not (ON_POSTGRES and ON_REDIS), reason="needs DATABASE_URL (PostgreSQL) and REDIS_URL"
)


def start_shared_gateways(count: int = 2) -> list[GatewayProcess]:
    """Gateway processes on the test database and Redis, health read without delay."""
    return [
        start_gateway_process(
            shared_database_url(), LOWROUTER_ROUTING_HEALTH_REFRESH_S="0", CONN_MAX_AGE="0"
        )
        for _ in range(count)
    ]


@pytest.fixture
def two_servers(fleet) -> Iterator[list[str]]:
    gateways = start_shared_gateways()
    try:
        yield [g.wait_ready().api for g in gateways]
    finally:
        for g in gateways:
            g.stop()


def test_a_failure_seen_by_one_process_is_skipped_by_another(fleet, two_servers):
    first, second = two_servers
    body = {"model": FLEET_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    auth = {"Authorization": f"Bearer {fleet.funded.token}"}
    fleet.servers["alpha"].config.fault = "http_error"
    fleet.servers["alpha"].config.fault_count = 1

    resp = httpx.post(first + "/chat/completions", json=body, headers=auth, timeout=20)
    assert resp.json()["lowrouter"]["provider"] == "beta"
    assert fleet.served() == {"alpha": 1, "beta": 1}

    resp = httpx.post(second + "/chat/completions", json=body, headers=auth, timeout=20)
    assert resp.json()["lowrouter"]["provider"] == "beta"
    # The second process never asked alpha: it read the first one's mark from Redis.
    assert fleet.served() == {"alpha": 1, "beta": 2}
    gen_id = resp.headers["X-LowRouter-Generation-ID"]
    trace = httpx.get(f"{second}/generation/{gen_id}", headers=auth, timeout=10).json()[
        "routing_trace"
    ]
    assert {
        "model": FLEET_MODEL,
        "provider": "alpha",
        "region": "eu-west",
        "why": "unhealthy:http_500",
    } in trace["removed"]
    assert [a["provider"] for a in trace["attempts"]] == ["beta"]
