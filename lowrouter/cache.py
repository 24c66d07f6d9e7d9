"""The Redis cache, made to degrade instead of fail.

Redis holds shared but reconstructible state: catalogue and policy version counters, upstream
slot health and latency samples. When it is unreachable the gateway keeps serving: reads answer
"nothing known" (each process then reloads its catalogue snapshot every half second and routes
without shared health), writes are dropped, and a warning is logged at most every 30 seconds.
Everything is shared again as soon as Redis answers. Money never depends on Redis.
"""

import logging
import time
from collections.abc import Iterable
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_WARN_EVERY = 30.0
_last_warning = 0.0


def _warn(op: str) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_EVERY:
        _last_warning = now
        log.warning("Redis unreachable (%s): serving without shared state until it returns", op)


class ResilientRedisCache(RedisCache):
    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        try:
            return super().get(key, default, version)
        except _UNREACHABLE:
            _warn("get")
            return default

    def get_many(self, keys: Iterable[str], version: int | None = None) -> dict:
        try:
            return super().get_many(keys, version)
        except _UNREACHABLE:
            _warn("get_many")
            return {}

    def set(self, key: str, value: Any, timeout: Any = ..., version: int | None = None) -> None:
        try:
            if timeout is ...:
                super().set(key, value, version=version)
            else:
                super().set(key, value, timeout, version)
        except _UNREACHABLE:
            _warn("set")

    def add(self, key: str, value: Any, timeout: Any = ..., version: int | None = None) -> bool:
        try:
            if timeout is ...:
                return super().add(key, value, version=version)
            return super().add(key, value, timeout, version)
        except _UNREACHABLE:
            _warn("add")
            return False

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        try:
            return super().incr(key, delta, version)
        except _UNREACHABLE:
            _warn("incr")
            return 0

    def delete(self, key: str, version: int | None = None) -> bool:
        try:
            return super().delete(key, version)
        except _UNREACHABLE:
            _warn("delete")
            return False

    def delete_many(self, keys: Iterable[str], version: int | None = None) -> None:
        try:
            super().delete_many(keys, version)
        except _UNREACHABLE:
            _warn("delete_many")


class _ProcessCache:
    """The default cache as one object per process, for the request path.

    ``django.core.cache.cache`` is context-local: under ASGI every request (and every worker
    thread running its database work) gets a fresh cache object, so with Redis each request
    opened new connections. This handle is created once and shared; redis-py's connection pool
    is thread-safe, and the local-memory backend shares its storage by name anyway.
    """

    def __init__(self) -> None:
        self._instance: BaseCache | None = None

    def __getattr__(self, name: str) -> Any:
        if self._instance is None:
            self._instance = caches.create_connection(DEFAULT_CACHE_ALIAS)
        return getattr(self._instance, name)

    def reset(self) -> None:
        self._instance = None


shared_cache = _ProcessCache()


@receiver(setting_changed)
def _forget_shared_cache(*, setting: str, **kwargs: Any) -> None:
    # Only tests change CACHES at run time; the handle must follow them.
    if setting == "CACHES":
        shared_cache.reset()
