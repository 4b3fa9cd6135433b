"""A connection's API key at rest: wrapped by the vault's current key-encryption key, bound to the connection.

Stored form `<kek id>.<base64 nonce + wrapped>` (the vault keyring's AES-256-GCM wrap, the owner
"connection:<id>" as associated data): a value copied into another row does not open, and a keyring rotation
keeps old keys to open what they sealed (typing the key again seals it with the current one).
"""

from __future__ import annotations

from rubin_app.config import Settings
from rubin_app.vault.service import get_vault


def _owner(connection_id: int) -> str:
    return f"connection:{connection_id}"


def seal_key(connection_id: int, key: str, settings: Settings | None = None) -> str:
    """The stored form of an API key: wrapped by the vault's current key, bound to the connection."""
    if not key:
        return ""
    kek, wrapped = get_vault(settings).keyring.wrap(key.encode("utf-8"), _owner(connection_id))
    return f"{kek}.{wrapped}"


def open_key(connection_id: int, sealed: str, settings: Settings | None = None) -> str:
    """The API key of a stored value ("" for none); KeyringError when it does not open."""
    if not sealed:
        return ""
    kek, _, wrapped = sealed.partition(".")
    return get_vault(settings).keyring.unwrap(kek, wrapped, _owner(connection_id)).decode("utf-8")
