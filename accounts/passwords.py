"""Password rules beyond Django's: refuse the shapes that breached-password lists are full of.

OWASP ASVS asks for at least 12 characters, no low maximum and a check against breached or
common passwords. Django's CommonPasswordValidator covers its list of 20,000 common passwords;
this one refuses what such lists are made of once the length is met: one character repeated,
a run of the keyboard or the alphabet, the product's own name, or a common password padded
with digits ("password123456").
"""

import re

from django.contrib.auth.password_validation import CommonPasswordValidator
from django.core.exceptions import ValidationError

_RUNS = ("abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm", "azertyuiop", "0123456789")


class PredictablePasswordValidator:
    def __init__(self) -> None:
        self.common = CommonPasswordValidator().passwords

    def validate(self, password: str, user: object = None) -> None:
        folded = password.lower()
        core = re.sub(r"[\d\W_]+$", "", re.sub(r"^[\d\W_]+", "", folded))
        if len(set(folded)) <= 3:
            raise ValidationError("This password repeats too few characters.", code="repeated")
        if any(folded in run or folded in run[::-1] for run in _RUNS) or _mostly_run(folded):
            raise ValidationError("This password is a run of keys or letters.", code="sequence")
        if "lowrouter" in folded:
            raise ValidationError("This password contains the product's name.", code="product")
        if core and core != folded and core in self.common:
            raise ValidationError(
                "This password is a common password with digits or symbols added.",
                code="padded_common",
            )

    def get_help_text(self) -> str:
        return "Not a repeated character, a run of keys, or a common password with digits added."


def _mostly_run(folded: str) -> bool:
    """Most of the password is one run of a keyboard row, the alphabet or the digits."""
    longest = 0
    for run in _RUNS:
        for text in (run, run[::-1]):
            for size in range(len(folded), longest, -1):
                if any(folded[i : i + size] in text for i in range(len(folded) - size + 1)):
                    longest = size
                    break
    return longest >= max(8, len(folded) * 2 // 3)
