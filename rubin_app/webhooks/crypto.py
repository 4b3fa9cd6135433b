"""Webhook signing secrets: made here, stored encrypted (AES-256-GCM, key from the app's SECRET_KEY).

Stored form: `v1.<key id>.<base64url(nonce + ciphertext + tag)>`. "v1" names the scheme (HKDF-SHA256 of
SECRET_KEY -> AES-256-GCM, a 12-byte random nonce, the purpose as associated data); the key id (8 hex
characters derived from the key, revealing nothing of it) says which SECRET_KEY encrypted the value, so a
SECRET_KEY rotation (issue #13) can decrypt with the old key (`previous_keys`) and re-encrypt with the new.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SCHEME = "v1"
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks: 24 to 64 bytes
_SALT = b"rubin-webhooks"
_KEY_INFO = b"rubin webhook secrets: aes-256-gcm key"
_ID_INFO = b"rubin webhook secrets: key id"
_AAD = b"rubin webhook endpoint secret"


class SecretBoxError(Exception):
    """A stored secret that cannot be decrypted (wrong SECRET_KEY, unknown scheme, damaged value)."""


def new_signing_secret() -> str:
    """A fresh `whsec_…` secret (base64 of 32 random bytes), the form standardwebhooks.Webhook accepts."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode("ascii")


def _derive(secret_key: str, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=info).derive(secret_key.encode("utf-8"))


class _Key:
    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("an empty SECRET_KEY cannot encrypt webhook secrets")
        self.aead = AESGCM(_derive(secret_key, _KEY_INFO, 32))
        self.id = _derive(secret_key, _ID_INFO, 4).hex()


class SecretBox:
    """Encrypts with `secret_key`; decrypts what it or any of `previous_keys` encrypted."""

    def __init__(self, secret_key: str, *, previous_keys: Sequence[str] = ()) -> None:
        self._current = _Key(secret_key)
        self._keys = {k.id: k for k in (_Key(p) for p in previous_keys)}
        self._keys[self._current.id] = self._current

    @property
    def key_id(self) -> str:
        """The id of the key new values are encrypted with."""
        return self._current.id

    def encrypt(self, plaintext: str) -> str:
        """The stored form of `plaintext`."""
        nonce = os.urandom(12)
        sealed = self._current.aead.encrypt(nonce, plaintext.encode("utf-8"), _AAD)
        token = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{SCHEME}.{self._current.id}.{token}"

    def decrypt(self, stored: str) -> str:
        """The plaintext of a stored value; SecretBoxError when no known key opens it."""
        scheme, _, rest = stored.partition(".")
        key_id, _, token = rest.partition(".")
        if scheme != SCHEME or not token:
            raise SecretBoxError("not an encrypted webhook secret")
        key = self._keys.get(key_id)
        if key is None:
            raise SecretBoxError("encrypted with another SECRET_KEY")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            return key.aead.decrypt(raw[:12], raw[12:], _AAD).decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error):
            raise SecretBoxError("damaged encrypted webhook secret") from None

    def needs_reencrypt(self, stored: str) -> bool:
        """Whether a stored value was encrypted with an older key (re-encrypt it after a rotation)."""
        return stored.split(".")[1:2] != [self._current.id]
