"""PostgreSQL restarting under load, for real: a gateway process on a cluster of the test's own
(``private_postgres``), clients sending plain and streamed requests without pause, and the
server stopped (fast shutdown), left down for a second and started again in the middle.

What must hold: every answer is a 200 or a clean 503 ``database_unavailable`` in the API's error
shape, never a 500; the gateway serves again once the server is back, without being restarted;
afterwards, with the holds of interrupted settlements given back by the orphan reaper, the
books are exact: the balance equals the ledger, each record's cost is one ledger entry, and the
only answered requests without a record are those in flight when the server went down. The
prompt's text is in no file of the cluster (tables, WAL, server log), no cache entry and no log.
"""

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from billing.money import credits_to_micros
from tests.conftest import needs_postgres
from tests.processes import GatewayProcess, manage, start_gateway_process
from tests.reliability.conftest import chat_body
from tests.reliability.private_postgres import (
    PrivateCluster,
    needs_private_cluster,
    private_cluster,
)

pytestmark = [needs_postgres, needs_private_cluster, pytest.mark.timeout(180)]

EMAIL = "restart@example.com"
CREDITS = "100"
CLIENTS = 8
DOWN_SECONDS = 1.0

CATALOGUE = """\
version: 1
providers:
  - id: demo
    name: Demo upstream of the restart test
    wire_format: openai
    base_url: {base_url}
    requires_credential: false
    billing_currency: EUR
    is_demo: true
models:
  - id: demo/echo-small
    display_name: Echo (not a language model)
    owner: lowrouter
    context_window: 32768
    max_output_tokens: 4096
    capabilities: [streaming]
    active_params_b: 3
    params_source: Nominal size declared for the test server.
    params_accuracy: gross
    params_nominal: true
    platform_fee_per_1m: "0.02"
    offerings:
      - provider: demo
        region: local
        upstream_model: echo-small
        prompt_price: "0.10"
        completion_price: "0.30"
"""

# Run by `manage.py shell` on the private cluster once the load is over.
BOOKS = """
import json
from datetime import timedelta
from billing.ledger import ledger_sum
from billing.models import Generation, Hold, KeySpend, LedgerEntry, LedgerKind, Wallet
from billing.spending import release_orphaned_holds
released = release_orphaned_holds(older_than=timedelta(0))
wallet = Wallet.objects.get(account__email="{email}")
usage = LedgerEntry.objects.filter(account=wallet.account, kind=LedgerKind.USAGE)
print(json.dumps({{
    "released": released,
    "balance": wallet.balance_micros,
    "ledger": ledger_sum(wallet.account),
    "reserved": wallet.reserved_micros,
    "holds": Hold.objects.count(),
    "key_reserved": sum(k.reserved_micros for k in KeySpend.objects.all()),
    "generations": {{g.id: g.cost_micros for g in Generation.objects.all()}},
    "usage_entries": {{e.generation_id: -e.amount_micros for e in usage}},
}}))
"""


@dataclass
class Restartable:
    cluster: PrivateCluster
    gateway: GatewayProcess
    token: str
    env: dict[str, str]


@dataclass
class Outcome:
    sent: float
    done: float
    status: int
    stream: bool
    body: str
    generation_id: str | None


@pytest.fixture
def restartable(upstream, tmp_path) -> Iterator[Restartable]:
    with private_cluster() as cluster:
        env = {
            "DATABASE_URL": cluster.create_database("lowrouter"),
            # Its own cache keys when REDIS_URL is set: nothing shared with the test database's.
            "CACHE_KEY_PREFIX": f"lr-restart-{uuid.uuid4().hex[:8]}",
        }
        manage("migrate", "--noinput", "-v0", **env)
        catalogue = tmp_path / "catalogue.yaml"
        catalogue.write_text(CATALOGUE.format(base_url=upstream.base_url))
        manage("catalog_sync", str(catalogue), **env)
        manage("create_account", EMAIL, "--credits", CREDITS, "--verified", **env)
        token = manage("create_key", EMAIL, "--name", "restart", **env).strip().splitlines()[-1]
        gateway = start_gateway_process(env["DATABASE_URL"], **env)
        try:
            yield Restartable(cluster, gateway.wait_ready(), token, env)
        finally:
            gateway.stop()


async def _load_through_a_restart(
    r: Restartable, canary: str
) -> tuple[list[Outcome], float, float]:
    outcomes: list[Outcome] = []
    over = asyncio.Event()

    async def client_loop(client: httpx.AsyncClient, i: int) -> None:
        n = 0
        while not over.is_set():
            stream = (i + n) % 2 == 0
            sent = time.monotonic()
            resp = await client.post(
                r.gateway.api + "/chat/completions",
                json=chat_body(canary, stream=stream, max_tokens=20),
                headers={"Authorization": f"Bearer {r.token}"},
            )
            outcomes.append(
                Outcome(
                    sent,
                    time.monotonic(),
                    resp.status_code,
                    stream,
                    resp.text,
                    resp.headers.get("X-LowRouter-Generation-ID"),
                )
            )
            n += 1

    async def operator() -> tuple[float, float]:
        await asyncio.sleep(1.0)
        went_down = time.monotonic()
        await asyncio.to_thread(r.cluster.stop)
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(r.cluster.start)
        back_up = time.monotonic()
        await asyncio.sleep(2.0)
        over.set()
        return went_down, back_up

    async with httpx.AsyncClient(timeout=30) as client:
        *_, (went_down, back_up) = await asyncio.gather(
            *(client_loop(client, i) for i in range(CLIENTS)), operator()
        )
    return outcomes, went_down, back_up


def _answered_in_full(o: Outcome) -> bool:
    if o.stream:
        return o.body.rstrip().endswith("data: [DONE]")
    body = json.loads(o.body)
    return bool(body["choices"]) and body["lowrouter"]["generation_id"] == o.generation_id


def test_postgresql_restart_under_load_fails_cleanly_recovers_and_keeps_the_books(
    db, restartable, upstream, canary
):
    upstream.config.latency_ms = 5
    upstream.config.chunk_interval_ms = 5
    outcomes, went_down, back_up = asyncio.run(_load_through_a_restart(restartable, canary))

    statuses = [o.status for o in outcomes]
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    for o in outcomes:
        if o.status == 503:
            error = json.loads(o.body)["error"]
            assert error["code"] == "database_unavailable"
            assert error["type"] and error["message"]
        else:
            assert o.generation_id and _answered_in_full(o), o.body[-300:]
    # The server was down while requests kept coming, and they were refused, not held.
    refused_while_down = [
        o for o in outcomes if o.status == 503 and went_down <= o.sent and o.done <= back_up
    ]
    assert refused_while_down
    # Served again once it was back, by the same gateway process.
    after = [o for o in outcomes if o.sent > back_up + 0.25]
    assert len(after) >= 10 and {o.status for o in after} == {200}
    assert restartable.gateway.proc.poll() is None

    books = json.loads(
        manage("shell", "-c", BOOKS.format(email=EMAIL), **restartable.env).strip().splitlines()[-1]
    )
    assert books["balance"] == books["ledger"]
    assert books["reserved"] == 0 and books["holds"] == 0 and books["key_reserved"] == 0
    # Each recorded cost is exactly one usage entry, and nothing else was charged.
    charged = {g: cost for g, cost in books["generations"].items() if cost}
    assert books["usage_entries"] == charged
    assert books["balance"] == credits_to_micros(CREDITS) - sum(charged.values())
    # A record for every answered request, except those in flight when the server went down.
    answered = {o.generation_id: o for o in outcomes if o.status == 200}
    assert set(books["generations"]) <= set(answered)
    missing = [answered[g] for g in set(answered) - set(books["generations"])]
    assert all(o.sent < back_up and o.done > went_down for o in missing), missing
    assert len(missing) <= CLIENTS

    needle = canary.encode()
    assert restartable.cluster.files_containing(needle) == []
    assert needle not in restartable.gateway.log.read_bytes()


def test_the_cluster_sweep_finds_text_that_was_written():
    """The canary sweep above is only worth something if it sees what a statement wrote."""
    needle = f"CANARY-{uuid.uuid4().hex}"
    with private_cluster() as cluster:
        url = cluster.create_database("sweep").replace("postgres://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("CREATE TABLE t (body text)")
            c.execute("INSERT INTO t VALUES (%s)", [needle])
        hits = cluster.files_containing(needle.encode())
    assert any(h.startswith("pg_wal/") for h in hits), hits
