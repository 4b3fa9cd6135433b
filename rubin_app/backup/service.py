"""Make, list and restore backups (blocking work: the scheduler runs it in a thread).

A backup: a consistent copy of the database (database.py), DATA_DIR's other files and the settings that are
not secrets, in an archive (archive.py) encrypted with BACKUP_KEY (crypto.py), stored at a destination
(destinations.py). A restore verifies everything first — decryption of every chunk, the checksums, a schema
this code knows, the keys the data needs, an empty target — and only then changes anything.
"""

from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rubin_app.backup import archive, crypto, database
from rubin_app.backup.destinations import Destination, Entry, backup_name, default_target, open_destination
from rubin_app.config import Settings
from rubin_app.core.clock import utcnow
from rubin_app.services.migrate import alembic_config
from rubin_app.webhooks.crypto import SecretBox

log = logging.getLogger(__name__)


class RestoreRefused(Exception):
    """The backup cannot be restored here; nothing was changed. The message says why and what to do."""


@dataclass
class Made:
    """A backup that was made."""

    destination: str
    entry: Entry
    manifest: dict[str, Any]


def backup_key(settings: Settings) -> bytes:
    """BACKUP_KEY as bytes (a clear error when it is not set)."""
    if settings.backup_key is None:
        raise RestoreRefused(
            "BACKUP_KEY is not set: backups are always encrypted (`python -m rubin_app backup new-key`)"
        )
    return crypto.parse_key(settings.backup_key.get_secret_value())


def _secret_key(settings: Settings) -> str | None:
    """SECRET_KEY, or the one generated into DATA_DIR (None: there is none yet)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.data_dir / "secret_key"
    return path.read_text().strip() if path.is_file() else None


def schema_head() -> str:
    """The newest alembic revision this code knows."""
    from alembic.script import ScriptDirectory  # imported when a backup is made or read, not at start

    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


def _dump(settings: Settings, work: Path) -> tuple[Path, database.Snapshot]:
    url = settings.sync_database_url
    if database.kind_of(url) == "sqlite":
        dest = work / "rubin.db"
        return dest, database.dump_sqlite(url, dest)
    dest = work / "rubin.pgdump"
    return dest, database.dump_postgres(url, dest)


def _manifest(settings: Settings, snap: database.Snapshot, made_by: str, db_member: str) -> dict[str, Any]:
    secret = _secret_key(settings)
    return {
        "format": archive.ARCHIVE_FORMAT,
        "app_schema_head": schema_head(),
        "created_at": utcnow().isoformat(),
        "made_by": made_by,
        "database": {"kind": snap.kind, "member": db_member, "revision": snap.revision, "pg_dump": snap.client},
        "tables": snap.tables,
        "keys": {
            "data_keys": snap.key_samples,  # wrapped (by the instance's ENCRYPTION_KEY): opens nothing alone
            "secret_key_id": SecretBox(secret).key_id if secret else None,
        },
    }


def make_backup(settings: Settings, *, target: str | None = None, made_by: str = "manual") -> Made:
    """Make one backup now and store it at `target` (BACKUP_DESTINATION by default)."""
    key = backup_key(settings)
    dest = open_destination(target or default_target(settings), settings)
    exclude = [Path(dest.label)] if not dest.label.startswith("s3://") else []
    with tempfile.TemporaryDirectory(prefix="rubin-backup-") as tmp:
        work = Path(tmp)
        dump, snap = _dump(settings, work)
        member = f"database/{dump.name}"
        encrypted = work / "backup.rubinbak"
        with open(encrypted, "wb") as raw:
            sealed = crypto.EncryptingWriter(raw, key)
            writer = archive.Writer(sealed)  # type: ignore[arg-type]
            writer.add_file(dump, member)
            dump.unlink()  # the plain copy goes as soon as it is in the encrypted stream
            for path, name in archive.data_files(settings.data_dir, exclude):
                writer.add_file(path, f"files/{name}")
            writer.add_json(archive.SETTINGS, archive.settings_snapshot(settings))
            manifest = _manifest(settings, snap, made_by, member)
            manifest["members"] = writer.members
            writer.add_json(archive.MANIFEST, manifest, record=False)
            writer.close()
            sealed.close()
        name = backup_name(made_by, utcnow())
        dest.put(encrypted, name)
        size = encrypted.stat().st_size
    log.info("backup %s made to %s (%d bytes, %d tables)", name, dest.label, size, len(snap.tables))
    return Made(dest.label, Entry(name, size, utcnow()), manifest)


def list_backups(settings: Settings, target: str | None = None) -> tuple[Destination, list[tuple[Entry, str]]]:
    """The backups at a destination, each with what its header says about the key ('ok', 'other key', …)."""
    dest = open_destination(target or default_target(settings), settings)
    mine = crypto.fingerprint(backup_key(settings)) if settings.backup_key else ""
    rows = []
    for entry in dest.list():
        try:
            head = dest.head(entry.name, crypto.HEADER_BYTES)
            version, fp, _header = crypto.read_header(io.BytesIO(head))
            state = "ok" if fp == mine else ("BACKUP_KEY not set" if not mine else "other key")
            state = "newer format" if version > crypto.FORMAT_VERSION else state
        except crypto.BackupCryptoError:
            state = "not a backup"
        rows.append((entry, state))
    return dest, rows


def split_source(source: str, settings: Settings) -> tuple[Destination, str]:
    """(destination, file name) of a restore source: a file path or s3://bucket/prefix/name."""
    if source.startswith("s3://"):
        parent, _, name = source.rstrip("/").rpartition("/")
        if parent == "s3:/":
            raise RestoreRefused(f"{source!r}: name a backup file, e.g. s3://bucket/prefix/rubin-….rubinbak")
        return open_destination(parent, settings), name
    path = Path(source).expanduser()
    if not path.is_file():
        raise RestoreRefused(f"{source}: no such file")
    return open_destination(str(path.parent), settings), path.name
