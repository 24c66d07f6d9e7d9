import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as ULIDs use


# Every two-character group, so an id takes half as many steps (it is made per request).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def _base32(value: int, length: int) -> str:
    """``value`` as ``length`` base32 characters (``length`` even), most significant first."""
    groups = []
    for _ in range(length // 2):
        value, rem = divmod(value, 1024)
        groups.append(_PAIRS[rem])
    return "".join(reversed(groups))


def new_generation_id() -> str:
    """``gen_`` + a ULID: 48 bits of milliseconds then 80 random bits, so ids sort by time."""
    millis = time.time_ns() // 1_000_000
    return "gen_" + _base32(millis, 10) + _base32(int.from_bytes(os.urandom(10), "big"), 16)
