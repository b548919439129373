"""Tenant credentials at rest: a JSON object encrypted with Fernet (AES-128-CBC + HMAC).

The key comes from SWITCHBOARD_CREDENTIALS_KEY. Rotating keys: MultiFernet accepts several
comma-separated keys, encrypts with the first and decrypts with any.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class CredentialsError(RuntimeError):
    """Credentials could not be decrypted (wrong key) or are not a JSON object."""


class CredentialsBox:
    def __init__(self, keys: str) -> None:
        try:
            self._fernet = MultiFernet([Fernet(k.strip()) for k in keys.split(",") if k.strip()])
        except (ValueError, TypeError) as exc:
            raise CredentialsError(
                "SWITCHBOARD_CREDENTIALS_KEY must be one or more Fernet keys "
                "(Fernet.generate_key()), comma-separated"
            ) from exc

    def seal(self, credentials: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(credentials, sort_keys=True).encode())

    def open(self, token: bytes | None) -> dict[str, Any]:
        if not token:
            return {}
        try:
            value = json.loads(self._fernet.decrypt(token))
        except InvalidToken as exc:
            raise CredentialsError("tenant credentials cannot be decrypted with this key") from exc
        if not isinstance(value, dict):
            raise CredentialsError("tenant credentials are not a JSON object")
        return value

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()
