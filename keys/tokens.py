"""Virtual key tokens: generated once, shown once, stored only as a digest."""

import hashlib
import secrets

TOKEN_PREFIX = "lr-sk-"
# 32 random bytes -> 43 url-safe characters, so a token is 49 characters long.
_TOKEN_BYTES = 32


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def digest_token(token: str) -> str:
    # A plain SHA-256 suffices: the token carries 256 bits of entropy, so there is nothing
    # to brute-force, and a fast digest keeps authentication cheap on the hot path.
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX) and 40 <= len(token) <= 200 and token.isascii()
