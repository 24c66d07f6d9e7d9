"""A key edit or revocation is effective on the next request in every web process."""

from decimal import Decimal

import httpx
import pytest

from keys.actions import revoke_key, update_key
from tests.conftest import ON_POSTGRES, ON_REDIS
from tests.routing.test_failover_shared_health import start_shared_gateways

pytestmark = pytest.mark.skipif(
    not (ON_POSTGRES and ON_REDIS), reason="needs DATABASE_URL (PostgreSQL) and REDIS_URL"
)
BODY = {"model": "demo/echo-small", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def two_gateways(catalogue, funded):
    gateways = start_shared_gateways()
    try:
        yield [g.wait_ready().api for g in gateways]
    finally:
        for g in gateways:
            g.stop()


def _post(api: str, token: str) -> httpx.Response:
    return httpx.post(
        api + "/chat/completions",
        json=BODY,
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )


def test_edits_and_revocation_reach_every_process_on_the_next_request(two_gateways, funded):
    a, b = two_gateways
    assert _post(a, funded.token).status_code == 200
    assert _post(b, funded.token).status_code == 200

    update_key(funded.key, enabled=False)
    for api in (a, b):
        resp = _post(api, funded.token)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "key_disabled"

    update_key(funded.key, enabled=True, daily_credit_limit=Decimal("0"))
    for api in (a, b):
        assert _post(api, funded.token).status_code == 429

    update_key(funded.key, daily_credit_limit=None)
    assert _post(b, funded.token).status_code == 200
    revoke_key(funded.key)
    for api in (a, b):
        resp = _post(api, funded.token)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "invalid_api_key"
