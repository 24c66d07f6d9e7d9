"""In-process copies (catalogue snapshot, routing policies, slot health) just past their check
interval are served while one background refresh reloads them; a missing or old copy is still
reloaded before the request is answered. (refresh_in_background itself is tested in
tests/lib/test_asyncdb_contract.py.)"""

import asyncio
import threading
import time

import pytest

from catalog import snapshot as snapshots
from keys.auth import authenticate
from lowrouter import asyncdb
from routing import health, policies
from routing.router import aroute_request, snapshot_slots
from routing.validation import parse_chat_request
from tests.factories import make_funded

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker_sessions_ended"),
]


def _age(seconds: float) -> float:
    return time.monotonic() - seconds


def test_a_snapshot_just_past_its_interval_is_served_while_it_reloads(catalogue):
    async def steps() -> tuple:
        first = await snapshots.aget_snapshot()
        snapshots._state.checked_at = _age(snapshots.CHECK_INTERVAL + 1)
        served = await snapshots.aget_snapshot()
        running = asyncdb.pending_refresh("catalogue")
        await running
        fresh_again = time.monotonic() - snapshots._state.checked_at < snapshots.CHECK_INTERVAL
        return first, served, fresh_again

    first, served, fresh_again = asyncio.run(steps())
    assert served is first and fresh_again


def test_an_old_or_changed_snapshot_is_reloaded_before_answering(catalogue):
    async def steps() -> tuple:
        first = await snapshots.aget_snapshot()
        snapshots.mark_catalog_changed()  # an operator's edit: never served stale
        changed = await snapshots.aget_snapshot()
        snapshots._state.checked_at = _age(snapshots.CHECK_INTERVAL + asyncdb.STALE_GRACE_S + 1)
        snapshots.mark_catalog_changed()
        snapshots._state.checked_at = _age(snapshots.CHECK_INTERVAL + asyncdb.STALE_GRACE_S + 1)
        old = await snapshots.aget_snapshot()
        return first, changed, old

    first, changed, old = asyncio.run(steps())
    assert changed is not first and changed.version > first.version
    assert old is not changed and old.version > changed.version


def test_routing_serves_recent_copies_and_refreshes_them_once(catalogue):
    f = make_funded()
    key = authenticate(f"Bearer {f.token}")
    req = parse_chat_request(
        b'{"model": "demo/echo-small", "messages": [{"role": "user", "content": "hi"}]}'
    )
    snap = snapshots.get_snapshot()
    slots = snapshot_slots(snap)
    threads: list[str] = []
    real_refresh = policies.refreshed

    def counting_refresh():
        threads.append(threading.current_thread().name)
        return real_refresh()

    async def steps() -> tuple:
        await aroute_request(snap, req, key)  # loads both copies
        past = _age(policies.CHECK_INTERVAL + 1)
        policies._state.checked_at = past
        for slot in slots:
            at, record, samples = health._mirror.entries[slot]
            health._mirror.entries[slot] = (past, record, samples)
        policies.refreshed = counting_refresh
        try:
            plans = await asyncio.gather(*(aroute_request(snap, req, key) for _ in range(8)))
            await asyncdb.pending_refresh("routing")
        finally:
            policies.refreshed = real_refresh
        return plans, policies.is_fresh(), health.is_fresh(slots)

    plans, policies_fresh, health_fresh = asyncio.run(steps())
    assert {p.candidates[0].provider_id for p in plans} == {"demo"}
    assert len(threads) == 1 and threads[0] != threading.current_thread().name
    assert policies_fresh and health_fresh


def test_without_refreshing_health_is_never_served_stale(settings):
    settings.LOWROUTER_ROUTING_HEALTH_REFRESH_S = 0
    slot = ("demo", "local")
    health._mirror.entries[slot] = (time.monotonic(), None, None)
    assert not health.is_recent([slot])
