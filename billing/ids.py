import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as ULIDs use


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_generation_id() -> str:
    """``gen_`` + a ULID: 48 bits of milliseconds then 80 random bits, so ids sort by time."""
    millis = time.time_ns() // 1_000_000
    return "gen_" + _base32(millis, 10) + _base32(int.from_bytes(os.urandom(10), "big"), 16)
