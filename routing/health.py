"""Upstream health and latency per (provider, region) slot, shared by every process.

The state lives in Django's cache: Redis when REDIS_URL is set (so every web process sees a
failure marked by any of them), local memory on the embedded default. Each process keeps a copy
it trusts for LOWROUTER_ROUTING_HEALTH_REFRESH_S seconds, so routing reads no shared state on
most requests (on the event loop, a copy just past due is reloaded in the background while it
is still used, see ``is_recent``); its own marks are applied to that copy at once.

Per slot, two keys:
- ``routing:health:<provider>:<region>``: consecutive failures, the time of the last one, and
  the time until which the slot is skipped (a decaying penalty, or a 429's Retry-After);
- ``routing:latency:<provider>:<region>``: recent (time, first-byte ms) samples of real requests.

Both are written with get-then-set. Two processes failing on the same slot at the same instant
may count one failure instead of two, and concurrent successes may drop a latency sample; both
only soften an estimate, never route to a pinned-out slot, so no lock is taken.
"""

import asyncio
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings

from lowrouter.asyncdb import STALE_GRACE_S
from lowrouter.cache import shared_cache as cache
from routing.upstream import FailureKind

Slot = tuple[str, str]  # (provider id, region)

LATENCY_WINDOW_S = 300.0
MAX_LATENCY_SAMPLES = 50
SAMPLE_INTERVAL_S = 1.0
HEALTH_PREFIX = "routing:health:"
LATENCY_PREFIX = "routing:latency:"


class SlotState:
    OK = "ok"
    DEGRADED = "degraded"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class SlotHealth:
    state: str
    # Epoch seconds until which the slot is skipped (0 when it is not).
    until: float
    failures: int
    reason: str
    # 0..1: how much a recent failure still counts against the slot (decays to 0).
    penalty: float
    latency_ms: float | None

    def as_dict(self) -> dict:
        return {
            "state": self.state,
            "until": self.until or None,
            "failures": self.failures,
            "reason": self.reason or None,
            "latency_ms_p50": None if self.latency_ms is None else round(self.latency_ms),
        }


HEALTHY = SlotHealth(SlotState.OK, 0.0, 0, "", 0.0, None)


def _health_key(slot: Slot) -> str:
    return f"{HEALTH_PREFIX}{slot[0]}:{slot[1]}"


def _latency_key(slot: Slot) -> str:
    return f"{LATENCY_PREFIX}{slot[0]}:{slot[1]}"


# The median of a samples list, by the list's identity: routing reads it for every request,
# while the list itself is replaced whenever the copy is refreshed (never changed in place).
_medians: dict[int, tuple[list, float | None]] = {}


def _median_latency(samples: list | None, now: float) -> float | None:
    if not samples:
        return None
    cached = _medians.get(id(samples))
    if cached is not None and cached[0] is samples:
        return cached[1]
    recent = [ms for at, ms in samples if now - at <= LATENCY_WINDOW_S]
    median = statistics.median(recent) if recent else None
    if len(_medians) >= 1024:
        _medians.clear()
    _medians[id(samples)] = (samples, median)
    return median


def view_slot(record: dict | None, samples: list | None, now: float) -> SlotHealth:
    """The health of one slot at ``now`` from its stored record and latency samples."""
    latency = _median_latency(samples, now)
    if not record:
        return SlotHealth(SlotState.OK, 0.0, 0, "", 0.0, latency)
    until = float(record.get("until") or 0.0)
    failures = int(record.get("failures") or 0)
    last = float(record.get("last_failure") or 0.0)
    reason = str(record.get("reason") or "")
    if now < until:
        return SlotHealth(SlotState.UNAVAILABLE, until, failures, reason, 1.0, latency)
    decay = settings.LOWROUTER_ROUTING_DECAY_S
    age = now - last
    if failures and age < decay:
        # A slot that failed recently still scores worse, less so as time passes.
        penalty = min(1.0, failures / 3) * (1 - age / decay)
        return SlotHealth(SlotState.DEGRADED, 0.0, failures, reason, penalty, latency)
    return SlotHealth(SlotState.OK, 0.0, 0, "", 0.0, latency)


class _Mirror:
    """This process's copy of the shared records: slot -> (fetched_at, record, samples)."""

    def __init__(self) -> None:
        self.entries: dict[Slot, tuple[float, dict | None, list | None]] = {}
        self.tasks: set[asyncio.Task] = set()
        self.sampled_at: dict[Slot, float] = {}


_mirror = _Mirror()


def _fetch(slots: list[Slot]) -> dict[Slot, tuple[dict | None, list | None]]:
    keys = [k for s in slots for k in (_health_key(s), _latency_key(s))]
    found = cache.get_many(keys)
    return {s: (found.get(_health_key(s)), found.get(_latency_key(s))) for s in slots}


def _store(fetched: dict[Slot, tuple[dict | None, list | None]]) -> None:
    at = time.monotonic()
    for slot, (record, samples) in fetched.items():
        _mirror.entries[slot] = (at, record, samples)


def _stale(slots: Iterable[Slot], grace: float = 0.0) -> list[Slot]:
    """The slots whose copy is missing or more than ``grace`` seconds past its interval (all of
    them when refreshing is switched off)."""
    now = time.monotonic()
    refresh = settings.LOWROUTER_ROUTING_HEALTH_REFRESH_S
    stale = []
    for slot in slots:
        entry = _mirror.entries.get(slot)
        if entry is None or refresh <= 0 or now - entry[0] >= refresh + grace:
            stale.append(slot)
    return stale


def _view(slots: Iterable[Slot]) -> dict[Slot, SlotHealth]:
    now = time.time()
    result = {}
    for slot in slots:
        entry = _mirror.entries.get(slot)
        result[slot] = view_slot(entry[1], entry[2], now) if entry else HEALTHY
    return result


def is_fresh(slots: Iterable[Slot]) -> bool:
    """Whether ``read_health`` would answer from this process's copy, with no cache access."""
    return not _stale(slots)


def is_recent(slots: Iterable[Slot]) -> bool:
    """Whether every slot's copy is at most STALE_GRACE_S past its interval (``aroute_request``
    serves it while it is reloaded in the background). Never with refreshing switched off."""
    return not _stale(slots, grace=STALE_GRACE_S)


def read_health(slots: Iterable[Slot], *, refresh: bool = True) -> dict[Slot, SlotHealth]:
    """Health of the given slots: one cache round trip at most, none while this process's copy
    is fresh (see ``is_fresh``) or when ``refresh`` is False (the copy as it is)."""
    slots = list(dict.fromkeys(slots))
    stale = _stale(slots) if refresh else []
    if stale:
        _store(_fetch(stale))
    return _view(slots)


def _write_failure(slot: Slot, reason: str, retry_after: float | None) -> dict:
    now = time.time()
    record = cache.get(_health_key(slot)) or {}
    decay = settings.LOWROUTER_ROUTING_DECAY_S
    failures = int(record.get("failures") or 0)
    if now - float(record.get("last_failure") or 0.0) >= decay:
        failures = 0
    if retry_after is not None:
        # A 429 is the upstream asking for a pause, not a fault: honour it exactly and leave
        # the failure count alone.
        until = now + retry_after
    else:
        failures += 1
        base = settings.LOWROUTER_ROUTING_PENALTY_BASE_S
        until = now + min(base * 2 ** (failures - 1), settings.LOWROUTER_ROUTING_PENALTY_MAX_S)
    record = {
        "failures": failures,
        "last_failure": now if retry_after is None else record.get("last_failure", 0.0),
        "until": max(until, float(record.get("until") or 0.0)),
        "reason": reason,
    }
    ttl = max(decay, record["until"] - now) + 1
    cache.set(_health_key(slot), record, timeout=int(ttl))
    return record


async def amark_failure(slot: Slot, *, reason: str, retry_after: float | None = None) -> None:
    """Mark a slot unavailable after a 5xx, connection error, timeout or broken stream, or
    until ``retry_after`` seconds from now after a 429. Written before the caller moves on, so
    the next request in any process sees it."""
    loop = asyncio.get_running_loop()
    record = await loop.run_in_executor(None, _write_failure, slot, reason, retry_after)
    entry = _mirror.entries.get(slot)
    _mirror.entries[slot] = (time.monotonic(), record, entry[2] if entry else None)


def _write_success(slot: Slot, latency_ms: int, clear: bool) -> list:
    now = time.time()
    samples = [s for s in cache.get(_latency_key(slot)) or [] if now - s[0] <= LATENCY_WINDOW_S]
    samples = [*samples[-(MAX_LATENCY_SAMPLES - 1) :], [now, latency_ms]]
    cache.set(_latency_key(slot), samples, timeout=int(LATENCY_WINDOW_S) + 1)
    if clear:
        cache.delete(_health_key(slot))
    return samples


async def _record_success(slot: Slot, latency_ms: int, clear: bool) -> None:
    loop = asyncio.get_running_loop()
    samples = await loop.run_in_executor(None, _write_success, slot, latency_ms, clear)
    entry = _mirror.entries.get(slot)
    _mirror.entries[slot] = (
        time.monotonic(),
        None if clear else (entry[1] if entry else None),
        samples,
    )


def note_success(slot: Slot, latency_ms: int) -> None:
    """Record a served request's first-byte latency, and clear the slot's failures if it had
    any. Runs in the background: the caller's response does not wait for it."""
    entry = _mirror.entries.get(slot)
    clear = bool(entry and entry[1])
    now = time.monotonic()
    # One latency sample per slot per process every SAMPLE_INTERVAL_S is plenty for a 5-minute
    # median, and spares the shared cache two round trips on almost every request under load.
    # Clearing a failure is never skipped.
    if not clear and now - _mirror.sampled_at.get(slot, -SAMPLE_INTERVAL_S) < SAMPLE_INTERVAL_S:
        return
    _mirror.sampled_at[slot] = now
    task = asyncio.get_running_loop().create_task(_record_success(slot, latency_ms, clear))
    _mirror.tasks.add(task)
    task.add_done_callback(_mirror.tasks.discard)


def reset_health() -> None:
    """Forget all health and latency state, here and in the shared cache (tests, operators)."""
    keys = {k for s in _mirror.entries for k in (_health_key(s), _latency_key(s))}
    _mirror.entries.clear()
    _mirror.sampled_at.clear()
    client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if client is not None:
        # Redis: the records of every process, not only the slots this one has seen.
        redis = client(None, write=True)
        for prefix in (HEALTH_PREFIX, LATENCY_PREFIX):
            for raw in redis.scan_iter(match=cache.make_key(prefix + "*")):
                redis.delete(raw)
    cache.delete_many(list(keys))


async def anote_failure(
    slot: Slot, *, kind: FailureKind, status: int | None, retry_after: float | None
) -> None:
    """Record a failed attempt in the shared state: 5xx, connection errors, timeouts and broken
    or malformed responses mark the slot with the decaying penalty; a 429 skips it until its
    Retry-After (1 s without one); a 4xx caused by the request says nothing about the slot."""
    if kind == FailureKind.RATE_LIMITED:
        await amark_failure(slot, reason=kind, retry_after=retry_after or 1.0)
    elif kind == FailureKind.HTTP_ERROR and (status is None or status < 500):
        return
    else:
        await amark_failure(
            slot, reason=kind if kind != FailureKind.HTTP_ERROR else f"http_{status}"
        )
