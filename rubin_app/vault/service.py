"""The Vault: each user's data keys (unwrapped once, cached), new keys for new users, crypto-shredding,
rotation of the key-encryption key, and the instance key for values kept in Redis.

Services call `await vault.prime(session, user_id)` before they read or write a user's content; the ORM
hooks in vault/orm.py then seal and open the content columns with the primed cipher. Core statements that
bypass the ORM (column selects) use the cipher `prime` returns. Ciphers are cached per database and user.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Connection, func, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.config import Settings, get_settings
from rubin_app.core.clock import utcnow
from rubin_app.vault.keyring import KEY_BYTES, Keyring, KeyringError, derive, key_id, load_keyring
from rubin_app.vault.models import UserKey
from rubin_app.vault.sealing import UserCipher

log = logging.getLogger(__name__)
CACHE_SECONDS = 300.0
CACHE_SIZE = 20_000


def owner_label(user_id: int) -> str:
    """What a wrapped data key is bound to."""
    return f"user:{user_id}"


@dataclass
class RotationReport:
    """What `rotate` did."""

    rewrapped: int
    already_current: int
    seconds: float


class Vault:
    """Data keys by user; `enabled` False stores new values in clear (measurements only) but still opens."""

    def __init__(self, keyring: Keyring, *, enabled: bool = True) -> None:
        self.keyring = keyring
        self.enabled = enabled
        self._ciphers: OrderedDict[tuple[str, int], tuple[UserCipher, float]] = OrderedDict()  # (database, user)
        self._key_file_mtime = keyring.key_file.stat().st_mtime_ns if keyring.key_file else 0
        redis_keys = {int(key_id(k), 16): derive(k, b"rubin redis values") for k in keyring.keys}
        self.redis = UserCipher("redis", redis_keys, current=int(keyring.current_id, 16))

    # --- per-user ciphers -------------------------------------------------------------------------
    async def prime(self, session: AsyncSession, user_id: int) -> UserCipher:
        """The user's cipher, loaded (and cached) through the caller's session; a user without a data key
        (created before encryption) gets one in that session's transaction."""
        bind = session.bind
        slot = (str(bind.engine.url if isinstance(bind, AsyncConnection) else bind.url) if bind else "", user_id)
        hit = self._ciphers.get(slot)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        rows = (await session.exec(select(UserKey).where(UserKey.user_id == user_id))).all()
        if not rows:
            row = self.new_key_row(user_id)
            session.add(row)
            await session.flush()
            rows = [row]
        cipher = UserCipher(user_id, {r.id: self._unwrap(r.kek_id, r.wrapped, user_id) for r in rows if r.id})
        self._remember(slot, cipher)
        return cipher

    def prime_sync(self, connection: Connection, user_id: int) -> UserCipher:
        """`prime` from inside an ORM hook (a flush or a load that `prime` did not precede), on its connection."""
        slot = (str(connection.engine.url), user_id)
        hit = self._ciphers.get(slot)
        if hit is not None:
            return hit[0]
        table = UserKey.__table__  # type: ignore[attr-defined]
        rows = connection.execute(table.select().where(table.c.user_id == user_id)).all()
        if not rows:
            self.add_key_sync(connection, user_id)
            rows = connection.execute(table.select().where(table.c.user_id == user_id)).all()
        cipher = UserCipher(user_id, {r.id: self._unwrap(r.kek_id, r.wrapped, user_id) for r in rows})
        self._remember(slot, cipher)
        return cipher

    def _unwrap(self, kek: str, wrapped: str, user_id: int) -> bytes:
        """A data key; when its KEK is unknown and the keys come from the key file, re-read the file once
        (`encryption rotate` in another process added a key)."""
        if kek not in self.keyring.ids:
            self._reread_key_file()
        return self.keyring.unwrap(kek, wrapped, owner_label(user_id))

    def _reread_key_file(self) -> None:
        """Pick up a key file changed by `encryption rotate` or `retire` in another process."""
        path = self.keyring.key_file
        if path is not None and path.stat().st_mtime_ns != self._key_file_mtime:
            self.keyring = load_keyring(setting="", command="", data_dir=path.parent, create=False)
            self._key_file_mtime = path.stat().st_mtime_ns

    def _remember(self, slot: tuple[str, int], cipher: UserCipher) -> None:
        self._ciphers[slot] = (cipher, time.monotonic() + CACHE_SECONDS)
        self._ciphers.move_to_end(slot)
        while len(self._ciphers) > CACHE_SIZE:
            self._ciphers.popitem(last=False)

    def new_key_row(self, user_id: int) -> UserKey:
        """A fresh data key for a user, wrapped by the current key-encryption key."""
        self._reread_key_file()  # never wrap with a key another process has just retired
        kek, wrapped = self.keyring.wrap(os.urandom(KEY_BYTES), owner_label(user_id))
        return UserKey(user_id=user_id, kek_id=kek, wrapped=wrapped)

    def add_key_sync(self, connection: Connection, user_id: int) -> None:
        """Insert a new user's data key in the same transaction as the user (an ORM flush hook)."""
        row = self.new_key_row(user_id)
        connection.execute(insert(UserKey).values(user_id=user_id, kek_id=row.kek_id, wrapped=row.wrapped))

    def forget(self, user_id: int) -> None:
        """Drop a cached key (the user was deleted: their data key is gone from the database with them)."""
        for slot in [slot for slot in self._ciphers if slot[1] == user_id]:
            del self._ciphers[slot]

    # --- operations --------------------------------------------------------------------------------
    async def check(self, session: AsyncSession) -> dict[str, int]:
        """Data keys per KEK id; KeyringError when some are wrapped by a key the keyring does not hold, or
        when a key with a known id does not unwrap (a wrong key cannot start the app and write new data)."""
        counts = dict((await session.exec(select(UserKey.kek_id, func.count()).group_by(UserKey.kek_id))).all())
        missing = sorted(set(counts) - set(self.keyring.ids))
        if missing:
            raise KeyringError(
                f"{sum(counts[k] for k in missing)} data keys are wrapped by encryption key(s) {', '.join(missing)}, "
                f"which {self.keyring.source} does not hold (it has {', '.join(self.keyring.ids)}). Wrong or lost key: "
                "restore the key (ENCRYPTION_KEY or DATA_DIR/encryption.key) — without it that data cannot be read."
            )
        for kid in counts:
            sample = (await session.exec(select(UserKey).where(UserKey.kek_id == kid).limit(1))).first()
            if sample is not None:
                self.keyring.unwrap(sample.kek_id, sample.wrapped, owner_label(sample.user_id))
        return counts

    async def backfill(self, session: AsyncSession) -> int:
        """Give every user without a data key one (users created before encryption)."""
        from rubin_app.models.user import User  # the users table; models import nothing from the vault

        have = select(UserKey.user_id)
        ids = (await session.exec(select(User.id).where(col(User.id).not_in(have)))).all()
        for user_id in ids:
            if user_id is not None:
                session.add(self.new_key_row(user_id))
        await session.flush()
        return len(ids)

    async def rotate(self, session_factory, *, batch: int = 500) -> RotationReport:  # type: ignore[no-untyped-def]
        """Re-wrap every data key not wrapped by the current KEK, in batches, each its own transaction (users
        keep chatting: data keys themselves do not change, so no stored value needs re-encrypting)."""
        started = time.perf_counter()
        current = self.keyring.current_id
        done = 0
        while True:
            async with session_factory() as session:
                rows = (
                    await session.exec(
                        select(UserKey).where(UserKey.kek_id != current).order_by(col(UserKey.id)).limit(batch)
                    )
                ).all()
                for row in rows:
                    owner = owner_label(row.user_id)
                    kek, wrapped = self.keyring.wrap(self.keyring.unwrap(row.kek_id, row.wrapped, owner), owner)
                    await session.exec(
                        update(UserKey)
                        .where(col(UserKey.id) == row.id)
                        .values(kek_id=kek, wrapped=wrapped, rewrapped_at=utcnow())
                    )
            done += len(rows)
            if len(rows) < batch:
                break
        async with session_factory(read_only=True) as session:
            total = (await session.exec(select(func.count()).select_from(UserKey))).one()
        return RotationReport(rewrapped=done, already_current=int(total) - done, seconds=time.perf_counter() - started)


@lru_cache(maxsize=1)
def _vault_for(setting: str, command: str, data_dir: str, enabled: bool) -> Vault:
    from pathlib import Path

    return Vault(load_keyring(setting=setting, command=command, data_dir=Path(data_dir)), enabled=enabled)


def get_vault(settings: Settings | None = None) -> Vault:
    """The process-wide vault for the settings (KeyringError with a clear message when keys are wrong)."""
    s = settings or get_settings()
    key = s.encryption_key.get_secret_value() if s.encryption_key else ""
    return _vault_for(key, s.encryption_key_command, str(s.data_dir), s.encryption_at_rest)


def reset_vault() -> None:
    """Forget the process-wide vault (tests that change the keys or DATA_DIR)."""
    _vault_for.cache_clear()
