"""Provider credentials: an environment variable's name, or a value encrypted at rest.

Neither form is ever displayed back; the decrypted value lives only in process memory.
"""

import base64
import hashlib
import os

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from catalog.models import Provider


def _fernet() -> Fernet:
    key = settings.LOWROUTER_CREDENTIALS_KEY
    if not key:
        digest = hashlib.sha256(("lowrouter-credentials:" + settings.SECRET_KEY).encode()).digest()
        key = base64.urlsafe_b64encode(digest).decode()
    return Fernet(key.encode())


def encrypt_credential(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def set_credential(provider: Provider, value: str) -> None:
    """Store ``value`` encrypted on the provider (the caller saves the provider)."""
    provider.credential_encrypted = encrypt_credential(value) if value else ""


def resolve_credential(provider: Provider) -> str | None:
    if provider.credential_env:
        value = os.environ.get(provider.credential_env, "")
        if value:
            return value
    if provider.credential_encrypted:
        try:
            return _fernet().decrypt(provider.credential_encrypted.encode()).decode()
        except InvalidToken:
            return None
    return None
