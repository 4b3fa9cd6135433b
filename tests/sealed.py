"""Reading sealed content straight from a database file, as a test of another process's app must: the key-encryption
keys from that app's key file (or setting), the user's wrapped data keys from its `user_keys` table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rubin_app.vault.keyring import Keyring, parse_keys
from rubin_app.vault.sealing import UserCipher, is_sealed


def open_value(db: sqlite3.Connection, key_file: Path, user_id: int, column: str, stored: str) -> str:
    """The clear text of one stored value ("messages.content", …) of a user."""
    if not is_sealed(stored):
        return stored
    keyring = Keyring(tuple(parse_keys(key_file.read_text(), str(key_file))), str(key_file))
    rows = db.execute("SELECT id, kek_id, wrapped FROM user_keys WHERE user_id = ?", (user_id,)).fetchall()
    keys = {kid: keyring.unwrap(kek, wrapped, f"user:{user_id}") for kid, kek, wrapped in rows}
    return UserCipher(user_id, keys).open(column, stored)


def open_tab_state(key_file: Path, state_name: str, raw: bytes) -> bytes:
    """The sealed content vars of a stored tab state (Reflex's pickle, as Redis holds it), as the pickle bytes they
    were sealed from (strings appear in them as UTF-8; not unpickled: that would import the app's states); b"" when
    none."""
    import re

    from rubin_app.vault.keyring import derive, key_id

    found = re.search(rb"\$rv1\$\d+\$[A-Za-z0-9_-]+", raw)
    if found is None:
        return b""
    keys = parse_keys(key_file.read_text(), str(key_file))
    cipher = UserCipher("redis", {int(key_id(k), 16): derive(k, b"rubin redis values") for k in keys})
    return bytes.fromhex(cipher.open("state:" + state_name, found.group().decode()))


class app_keys:
    """Seal and open as an app with this DATA_DIR does (its key file), in this process, for the block's duration."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = str(data_dir)
        self.before: str | None = None

    def __enter__(self) -> None:
        import os

        from rubin_app.config import get_settings
        from rubin_app.vault.service import reset_vault

        self.before = os.environ.get("DATA_DIR")
        os.environ["DATA_DIR"] = self.data_dir
        get_settings.cache_clear()
        reset_vault()

    def __exit__(self, *_exc: object) -> None:
        import os

        from rubin_app.config import get_settings
        from rubin_app.vault.service import reset_vault

        if self.before is None:
            os.environ.pop("DATA_DIR", None)
        else:
            os.environ["DATA_DIR"] = self.before
        get_settings.cache_clear()
        reset_vault()
