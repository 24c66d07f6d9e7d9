"""Helpers for the reliability suites: the books check, the canary sweep, fresh upstream sessions.

Every fault test ends with ``assert_books_exact``: the balance equals the ledger, no hold is left
anywhere (Hold rows, Wallet.reserved_micros, KeySpend.reserved_micros) and each request left
exactly one generation record. ``assert_canary_nowhere`` then looks for the prompt's unique string
in every text column of every table, in every captured log record and in every cache entry.
"""

import json
import logging
import time
import uuid
from collections.abc import Iterator

import pytest
from django.apps import apps
from django.conf import settings
from django.core.cache import caches
from django.db import models

from billing.ledger import ledger_sum
from billing.models import Generation, Hold, KeySpend, Wallet

_TEXT_FIELDS = (models.CharField, models.TextField, models.JSONField)


def wait_until(predicate, timeout: float = 10.0) -> None:
    """Poll for an outcome the server reaches on its own schedule (settlement after a
    disconnect); a bound on waiting, never an assertion about speed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def assert_books_exact(user, *, generations: int | None = None) -> None:
    wallet = Wallet.objects.get(account=user)
    assert wallet.balance_micros == ledger_sum(user)
    assert wallet.reserved_micros == 0
    assert not Hold.objects.exists()
    assert all(ks.reserved_micros == 0 for ks in KeySpend.objects.all())
    assert wallet.balance_micros >= 0
    if generations is not None:
        assert Generation.objects.filter(account=user).count() == generations


def settled(user, generations: int):
    """A predicate: the request(s) have settled (holds released, records written)."""

    def check() -> bool:
        return (
            not Hold.objects.exists()
            and Generation.objects.filter(account=user).count() >= generations
        )

    return check


def _table_hits(canary: str) -> list[str]:
    hits = []
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, _TEXT_FIELDS)]
        for f in fields:
            if isinstance(f, models.JSONField):
                for value in model.objects.values_list(f.attname, flat=True):
                    if canary in json.dumps(value, default=str):
                        hits.append(f"{model._meta.db_table}.{f.column}")
            elif model.objects.filter(**{f"{f.attname}__contains": canary}).exists():
                hits.append(f"{model._meta.db_table}.{f.column}")
    return hits


def redis_hits(canary: str, url: str) -> list[str]:
    """The keys of the Redis database at ``url`` whose name or value holds ``canary``."""
    import redis

    client = redis.Redis.from_url(url)
    needle = canary.encode()
    return [
        key.decode(errors="replace")
        for key in client.scan_iter(count=1000)
        if needle in key or needle in (client.dump(key) or b"")
    ]


def _cache_hits(canary: str) -> list[str]:
    """The cache as configured now (a test may have pointed it at a Redis of its own)."""
    config = settings.CACHES["default"]
    if "Redis" in config["BACKEND"]:
        return redis_hits(canary, config["LOCATION"])
    needle = canary.encode()
    store = getattr(caches["default"], "_cache", {})
    return [str(k) for k, v in list(store.items()) if needle in str(k).encode() or needle in v]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def canary() -> Iterator[str]:
    """A unique string to put in prompts; after the test it must be nowhere we keep data."""
    value = f"CANARY-{uuid.uuid4().hex}"
    capture = _Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield value
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    assert _table_hits(value) == []
    assert _cache_hits(value) == []
    for record in capture.records:
        text = record.getMessage() + (
            logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        )
        assert value not in text, f"canary logged by {record.name}"


def chat_body(canary: str, *, stream: bool = False, max_tokens: int = 50, **extra) -> dict:
    return {
        "model": "demo/echo-small",
        "messages": [{"role": "user", "content": f"please remember {canary} for me"}],
        "max_tokens": max_tokens,
        "stream": stream,
        **extra,
    }


@pytest.fixture(autouse=True)
def _forget_upstream_health() -> Iterator[None]:
    """Each fault marks the slot unhealthy; the next test starts from a healthy upstream."""
    try:
        from routing.health import reset_health
    except ImportError:  # before upstream health tracking exists
        yield
        return
    reset_health()
    yield
    reset_health()
