"""In-process copies (catalogue snapshot, routing policies, slot health) just past their check
interval are served while one background refresh reloads them; a missing or old copy is still
reloaded before the request is answered."""

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from catalog import snapshot as snapshots
from keys.auth import authenticate
from lowrouter import asyncdb
from routing import health, policies
from routing.router import aroute_request, snapshot_slots
from routing.validation import parse_chat_request
from tests.conftest import end_other_sessions
from tests.factories import make_funded

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _worker_thread_sessions_end() -> Iterator[None]:
    """The loops' worker threads keep database sessions the test database cannot be dropped
    with."""
    yield
    end_other_sessions()


def test_one_background_refresh_runs_at_a_time():
    calls: list[int] = []
    started = threading.Event()
    release = threading.Event()

    def reload() -> None:
        calls.append(1)
        started.set()
        release.wait(5)

    async def steps() -> tuple[int, bool]:
        asyncdb.refresh_in_background("copy", reload)
        running = asyncdb.pending_refresh("copy")
        for _ in range(4):  # the requests that find the copy stale meanwhile
            asyncdb.refresh_in_background("copy", reload)
        same = asyncdb.pending_refresh("copy") is running
        assert await asyncio.to_thread(started.wait, 10)
        during = len(calls)
        release.set()
        await running
        asyncdb.refresh_in_background("copy", reload)  # the next one, once it has finished
        await asyncdb.pending_refresh("copy")
        return during, same

    during, same = asyncio.run(steps())
    assert during == 1 and same
    assert len(calls) == 2


def test_a_failed_background_refresh_is_logged_once_and_retried_later(caplog, monkeypatch):
    calls: list[int] = []

    def reload() -> None:
        calls.append(1)
        raise RuntimeError("cache down")

    async def steps() -> None:
        asyncdb.refresh_in_background("copy", reload)
        failed = asyncdb.pending_refresh("copy")
        with pytest.raises(RuntimeError):
            await failed
        for _ in range(5):  # the requests right after it start nothing
            asyncdb.refresh_in_background("copy", reload)
        assert asyncdb.pending_refresh("copy") is failed
        monkeypatch.setattr(asyncdb, "REFRESH_RETRY_S", 0.0)  # the retry delay has passed
        asyncdb.refresh_in_background("copy", reload)
        assert asyncdb.pending_refresh("copy") is not failed
        with pytest.raises(RuntimeError):
            await asyncdb.pending_refresh("copy")

    asyncio.run(steps())
    assert len(calls) == 2
    assert caplog.text.count("background refresh failed: RuntimeError") == 2


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
