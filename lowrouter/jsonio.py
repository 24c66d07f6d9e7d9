"""JSON on the request path: orjson, several times faster than the standard library there.

orjson refuses a few things the standard library takes: on reading, NaN and Infinity literals,
numbers beyond a double's range and lone surrogates (integers beyond 64 bits it reads as
floats); on writing, integers beyond 64 bits, lone surrogates and non-string keys. Those fall
back to ``json``, so what a request may contain, and how a bad one is answered, is the same as
with the standard library. ``loads_request`` then refuses the values of that fallback that
cannot be passed on: a number that is not finite, or a string that is not valid Unicode.
"""

import json
import math
from collections.abc import Callable

import orjson


class UnsendableValue(ValueError):
    """Valid JSON text holding a value no upstream can be sent: ``param`` names where it is."""

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(f"'{param}' {problem}" if param else f"The request body {problem}")
        self.param = param or None


def loads(data: bytes | str) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def as_object(value: object) -> dict:
    """``value`` if it is a JSON object, else an empty one (for JSON from outside, where a field
    expected to hold an object may hold anything)."""
    return value if isinstance(value, dict) else {}


def loads_request(data: bytes | str) -> object:
    """``loads`` for a caller's request body; raises UnsendableValue for NaN, Infinity, a number
    beyond a double's range (read as infinity) or a lone surrogate. orjson refuses all of them,
    so only a body it refused is searched."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        value = json.loads(data)
    found = find_unsendable(value)
    if found is not None:
        raise UnsendableValue(*found)
    return value


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def find_unsendable(value: object) -> tuple[str, str] | None:
    """Where the first value that cannot be written as UTF-8 JSON is, and what is wrong with it:
    ``("messages[0].content", "...")``, or None; the path is "" for the body itself. A bad key
    is reported at the object holding it, never by name (the answer could not carry it)."""
    pending: list[tuple[str, object]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return path, "must be a finite number."
        if isinstance(item, str) and _has_lone_surrogate(item):
            return path, "holds a lone surrogate, which is not valid Unicode text."
        if isinstance(item, list):
            pending.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(item))))
        elif isinstance(item, dict):
            children = []
            for key, v in item.items():
                if _has_lone_surrogate(key):
                    return path, "has a key with a lone surrogate, not valid Unicode."
                children.append((f"{path}.{key}" if path else key, v))
            pending.extend(reversed(children))
    return None


def dumps(obj: object, default: Callable[[object], object] | None = None) -> bytes:
    """Compact UTF-8 JSON. What orjson refuses is written by ``json`` with non-ASCII escaped, so
    a lone surrogate (an upstream may send one) is written as its escape, never raising."""
    try:
        return orjson.dumps(obj, default=default)
    except orjson.JSONEncodeError:
        return json.dumps(obj, default=default, separators=(",", ":")).encode()
