"""A connection's API key at rest: wrapped by the vault's current key-encryption key, bound to the connection.

Stored form `<kek id>.<base64 nonce + wrapped>` (the vault keyring's AES-256-GCM wrap, the owner
"connection:<id>" as associated data): a value copied into another row does not open, and a keyring rotation
keeps old keys to open what they sealed; `encryption rotate` seals them again with the current one (`reseal`).
"""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.config import Settings
from rubin_app.connections.models import Connection
from rubin_app.vault.keyring import KeyringError
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


def sealed_with(sealed: str) -> str:
    """The id of the key-encryption key a stored value was sealed with ("" for no key)."""
    return sealed.partition(".")[0] if sealed else ""


def reseal(connection_id: int, sealed: str, settings: Settings | None = None) -> str:
    """The stored value sealed again with the current key (unchanged when it already is, or holds no key)."""
    if not sealed or sealed_with(sealed) == get_vault(settings).keyring.current_id:
        return sealed
    return seal_key(connection_id, open_key(connection_id, sealed, settings), settings)


async def reseal_keys(*, session: AsyncSession, settings: Settings | None = None) -> int:
    """Seal every stored API key again with the current key-encryption key (after `encryption rotate`); how many
    changed. A key that no longer opens is left as it is (the admin types it again)."""
    changed = 0
    for row in (await session.exec(select(Connection).where(col(Connection.api_key_sealed) != ""))).all():
        try:
            sealed = reseal(row.id or 0, row.api_key_sealed, settings)
        except KeyringError:
            continue
        if sealed != row.api_key_sealed:
            row.api_key_sealed = sealed
            session.add(row)
            changed += 1
    await session.flush()
    return changed


async def sealed_by(*, session: AsyncSession, kek_id: str) -> int:
    """How many stored API keys the key-encryption key `kek_id` sealed (it cannot be retired while any)."""
    rows = (await session.exec(select(Connection.api_key_sealed).where(col(Connection.api_key_sealed) != ""))).all()
    return sum(1 for sealed in rows if sealed_with(sealed) == kek_id)
