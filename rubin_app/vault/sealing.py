"""The stored form of an encrypted value, and a user's cipher.

`$rv1$<data key id>$<base64url(nonce + ciphertext + tag)>`: AES-256-GCM with a 96-bit random nonce per value
(a user's key would need about 2^32 values before a repeat became a real risk; the ids of data keys are
unique across the instance). The associated data binds each value to its field and owner
("messages.content|<user id>"): a value copied into another user's row, or into another column, does not
open. The empty string is stored as it is (an empty draft or a just-started answer reveals only that).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)
PREFIX = "$rv1$"
NONCE_BYTES = 12
UNREADABLE = "⚠ [unreadable: this text is damaged or was encrypted with a key this server no longer has]"


class UnreadableValue(Exception):
    """A stored value that does not decrypt (damaged, moved, or its key is gone)."""


def is_sealed(value: str) -> bool:
    """Whether a stored value is in the encrypted form (else it is legacy clear text)."""
    return value.startswith(PREFIX)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UserCipher:
    """Seals and opens one owner's values; holds all of the owner's data keys by id, the newest current."""

    def __init__(self, owner: int | str, keys: dict[int, bytes], current: int | None = None) -> None:
        if not keys:
            raise ValueError("a cipher needs at least one data key")
        self.owner = str(owner)
        self._aeads = {kid: AESGCM(key) for kid, key in keys.items()}
        self.current = max(keys) if current is None else current

    def _aad(self, field: str) -> bytes:
        return f"{field}|{self.owner}".encode()

    def seal(self, field: str, text: str) -> str:
        """The stored form of `text` for `field` (empty stays empty)."""
        if not text:
            return ""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aeads[self.current].encrypt(nonce, text.encode("utf-8"), self._aad(field))
        return f"{PREFIX}{self.current}${_b64(nonce + sealed)}"

    def open(self, field: str, stored: str) -> str:
        """The text of a stored value; legacy clear text comes back as it is; UnreadableValue otherwise."""
        if not is_sealed(stored):
            return stored
        try:
            kid_text, body = stored[len(PREFIX) :].split("$", 1)
            aead = self._aeads.get(int(kid_text))
            if aead is None:
                raise UnreadableValue(f"data key {kid_text} is not {self.owner}'s")
            raw = _unb64(body)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad(field)).decode("utf-8")
        except (ValueError, binascii.Error, InvalidTag, UnicodeDecodeError) as exc:
            raise UnreadableValue(f"{field} of {self.owner}: {type(exc).__name__}") from None

    def show(self, field: str, stored: str, row: object = None) -> str:
        """`open`, but a value that does not decrypt reads as a marker (logged once, without content)."""
        try:
            return self.open(field, stored)
        except UnreadableValue as exc:
            log.warning("unreadable value (%s, row %s): %s", field, row, exc)
            return UNREADABLE
