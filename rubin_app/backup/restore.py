"""Restore a backup into an EMPTY instance: verify everything first, then change the database and files.

"Empty": the target database has no account and no chat (tables `users` and `conversations` hold no rows, or
do not exist yet). Refused, with nothing changed: a file that is cut short, damaged or reordered; one made by
a newer version (format, or an alembic revision this code does not know); one encrypted with another
BACKUP_KEY; data keys this instance's ENCRYPTION_KEY cannot open; webhook and two-factor secrets sealed with
another SECRET_KEY; a non-empty target; a file of DATA_DIR that exists with other content.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from alembic.util import CommandError

from rubin_app.backup import archive, crypto, database
from rubin_app.backup.destinations import DestinationError
from rubin_app.backup.service import RestoreRefused, _secret_key, backup_key, split_source
from rubin_app.config import Settings
from rubin_app.services.migrate import alembic_config, upgrade_head
from rubin_app.vault.keyring import KeyringError, load_keyring
from rubin_app.vault.service import owner_label
from rubin_app.webhooks.crypto import SecretBox

log = logging.getLogger(__name__)


@dataclass
class Restored:
    """What a restore put back."""

    tables: dict[str, int]
    revision_from: str | None
    revision_to: str
    files: int


def _check_revision(manifest: dict[str, Any]) -> None:
    revision = manifest["database"].get("revision")
    if not revision:
        raise RestoreRefused("the backup's database has no alembic revision: it is not a Rubin database")
    try:
        found = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        found = None
    if found is None:
        raise RestoreRefused(
            f"made by a newer Rubin: its database is at schema revision {revision}, which this version does not "
            "know. Restore it with that version (or newer)"
        )


def _check_keys(settings: Settings, manifest: dict[str, Any]) -> None:
    """The instance's ENCRYPTION_KEY opens the backup's data keys; its SECRET_KEY is the backup's."""
    samples = manifest.get("keys", {}).get("data_keys", [])
    if samples:
        try:
            ring = load_keyring(
                setting=settings.encryption_key.get_secret_value() if settings.encryption_key else "",
                command=settings.encryption_key_command, data_dir=settings.data_dir, create=False,
            )  # fmt: skip
            for sample in samples:
                ring.unwrap(sample["kek_id"], sample["wrapped"], owner_label(int(sample["user_id"])))
        except KeyringError as exc:
            raise RestoreRefused(
                f"this instance's encryption key cannot open the backup's data ({exc}). The key-encryption key is "
                "not in backups: set ENCRYPTION_KEY (or put DATA_DIR/encryption.key) of the instance that made it"
            ) from None
    wanted = manifest.get("keys", {}).get("secret_key_id")
    if wanted:
        secret = _secret_key(settings)
        have = SecretBox(secret).key_id if secret else None
        if have != wanted:
            raise RestoreRefused(
                f"the backup's webhook and two-factor secrets are sealed with SECRET_KEY {wanted}; this instance has "
                f"{have or 'none'}: set SECRET_KEY (or put DATA_DIR/secret_key) of the instance that made it"
            )


def _check_target(settings: Settings, manifest: dict[str, Any], unpacked: Path) -> list[tuple[Path, Path]]:
    """The target is empty and takes this kind of database; returns the files to copy (source, target)."""
    url = settings.sync_database_url
    kind = manifest["database"]["kind"]
    if kind != database.kind_of(url):
        raise RestoreRefused(f"a backup of a {kind} database cannot be restored into {database.kind_of(url)}")
    empty, counts = database.is_empty(url)
    if not empty:
        held = ", ".join(f"{n} {'chats' if t == 'conversations' else t}" for t, n in counts.items() if n)
        raise RestoreRefused(
            f"the target instance is not empty ({held}): restore only into an instance with no accounts and no "
            "chats (a new DATABASE_URL / DATA_DIR)"
        )
    if kind == "postgresql":
        database.check_restore_tools(manifest["database"].get("pg_dump", ""))
    copies = []
    files = unpacked / "files"
    for path in sorted(p for p in files.rglob("*") if p.is_file()) if files.is_dir() else []:
        target = settings.data_dir / path.relative_to(files)
        if target.exists() and archive.sha256_file(target) != archive.sha256_file(path):
            raise RestoreRefused(f"{target} exists with other content: move it away first")
        copies.append((path, target))
    return copies


def verify(settings: Settings, source: str, work: Path) -> tuple[dict[str, Any], Path]:
    """Fetch, decrypt and unpack the backup into `work`, checking all of it; returns (manifest, unpacked)."""
    key = backup_key(settings)
    try:
        dest, name = split_source(source, settings)
        encrypted = work / "backup.rubinbak"
        dest.get(name, encrypted)
    except DestinationError as exc:
        raise RestoreRefused(str(exc)) from None
    plain = work / "archive.tar.gz"
    try:
        with open(encrypted, "rb") as src, open(plain, "wb") as out:
            crypto.decrypt(src, out, key)
    except crypto.BackupCryptoError as exc:
        raise RestoreRefused(f"{name}: {exc}") from None
    encrypted.unlink()
    unpacked = work / "unpacked"
    try:
        manifest = archive.extract(plain, unpacked)
    except archive.ArchiveError as exc:
        raise RestoreRefused(f"{name}: {exc}") from None
    plain.unlink()
    _check_revision(manifest)
    return manifest, unpacked


def _load_database(settings: Settings, manifest: dict[str, Any], unpacked: Path, work: Path) -> dict[str, int]:
    url = settings.sync_database_url
    dump = unpacked / manifest["database"]["member"]
    if manifest["database"]["kind"] == "sqlite":
        if database.inspect_sqlite(dump).tables != manifest["tables"]:  # checked before the target is touched
            raise RestoreRefused("the backup's database does not hold the rows its manifest lists")
        database.restore_sqlite(dump, url)
        return dict(manifest["tables"])
    database.restore_postgres(dump, url, work)
    return database.inspect_postgres(url).tables


def restore(settings: Settings, source: str) -> Restored:
    """Verify the backup, refuse (RestoreRefused, nothing changed) or restore it and migrate it to head."""
    with tempfile.TemporaryDirectory(prefix="rubin-restore-") as tmp:
        work = Path(tmp)
        manifest, unpacked = verify(settings, source, work)
        _check_keys(settings, manifest)
        copies = _check_target(settings, manifest, unpacked)
        counts = _load_database(settings, manifest, unpacked, work)
        if counts != manifest["tables"]:
            log.error("restored row counts differ from the manifest: %s vs %s", counts, manifest["tables"])
            raise database.DatabaseError("the restored database does not hold the rows the manifest lists")
        for path, target in copies:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(path, target)
    upgrade_head(settings.sync_database_url)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head() or ""
    log.info("restored %s: %d tables, schema %s -> %s", source, len(counts), manifest["database"]["revision"], head)
    return Restored(counts, manifest["database"]["revision"], head, len(copies))
