"""Generation ids: ``gen_`` + a ULID in Crockford base32, sorting by creation time."""

import random
import re
import time

from billing.ids import _ALPHABET, _base32, new_generation_id


def _one_digit_at_a_time(value: int, length: int) -> str:
    digits = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))


def test_base32_by_pairs_is_base32():
    rng = random.Random(7)
    for _ in range(2000):
        stamp, noise = rng.getrandbits(48), rng.getrandbits(80)
        assert _base32(stamp, 10) == _one_digit_at_a_time(stamp, 10)
        assert _base32(noise, 16) == _one_digit_at_a_time(noise, 16)
    assert _base32(0, 10) == "0" * 10 and _base32(2**80 - 1, 16) == "Z" * 16


def test_ids_have_the_ulid_shape_and_sort_by_time():
    first = new_generation_id()
    time.sleep(0.002)
    second = new_generation_id()
    for gen_id in (first, second):
        assert re.fullmatch(r"gen_[0-9A-HJKMNP-TV-Z]{26}", gen_id)
    assert first < second
