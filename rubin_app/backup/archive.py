"""The archive inside a backup: a gzipped tar of `manifest.json`, `settings.json`, `database/…` and
`files/…` (DATA_DIR's other files), written as a stream and read back into a temporary folder.

The manifest records the format version, the code's schema head, the database's alembic revision and kind,
the rows per table, a SHA-256 per member, and the ids (never the keys) of the keys the data needs.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import SecretStr

from rubin_app.config import Settings

ARCHIVE_FORMAT = 1
MANIFEST = "manifest.json"
SETTINGS = "settings.json"
# DATA_DIR entries never copied as files: the database (it has its own part), the keys (secrets), tab states
# (ephemeral), the bundled engine's model (reinstalled), backups, and the app's own lock and scratch files.
SKIP_NAMES = {"encryption.key", "secret_key", ".states", "models", "backups"}
SKIP_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".lock", ".tmp", ".new", ".partial",
                 ".restoring", ".before-restore")  # fmt: skip


class ArchiveError(Exception):
    """The archive's content is not what its manifest says, or is from a newer version."""


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_files(data_dir: Path, exclude: list[Path]) -> Iterator[tuple[Path, str]]:
    """(path, name relative to DATA_DIR) of every regular file to back up (symlinks are not followed)."""
    if not data_dir.is_dir():
        return
    skip = {p.resolve() for p in exclude}
    for root, dirs, files in os.walk(data_dir):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not (here == data_dir and d in SKIP_NAMES)
                         and (here / d).resolve() not in skip and not (here / d).is_symlink())  # fmt: skip
        for name in sorted(files):
            path = here / name
            if (here == data_dir and name in SKIP_NAMES) or name.endswith(SKIP_SUFFIXES) or path.is_symlink():
                continue
            if path.resolve() in skip or not path.is_file():
                continue
            yield path, path.relative_to(data_dir).as_posix()


def _plain(value: Any) -> Any:
    """A setting's value without its secrets: SecretStr fields and secret keys inside lists are dropped."""
    if isinstance(value, SecretStr):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not isinstance(v, SecretStr) and "secret" not in k}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _without_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True) if url else url
    except Exception:
        return "(not shown)"


def settings_snapshot(settings: Settings) -> dict[str, Any]:
    """The settings that are not secrets, for the operator's reference (secret fields are left out)."""
    out: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) or (value is None and "key" in name) or "secret" in name:
            continue
        if isinstance(value, list):
            value = [v.model_dump() if hasattr(v, "model_dump") else v for v in value]
        out[name.upper()] = _plain(value)
    out["DATABASE_URL"] = _without_password(settings.database_url)
    out["REDIS_URL"] = _without_password(settings.redis_url)
    return out


class Writer:
    """Adds members to a gzipped tar stream, recording each member's checksum for the manifest."""

    def __init__(self, out: IO[bytes]) -> None:
        # Sealed content barely compresses: speed first. Large copy buffers: fewer Python-level loops (the GIL).
        self._gzip = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0)
        self._tar = tarfile.open(  # type: ignore[call-overload]  # noqa: SIM115 - closed in close(); copybufsize exists
            fileobj=self._gzip, mode="w|", format=tarfile.PAX_FORMAT, copybufsize=1 << 20
        )
        self.members: dict[str, dict[str, Any]] = {}

    def add_file(self, path: Path, arcname: str) -> None:
        """A file from disk, streamed."""
        digest, size = sha256_file(path), path.stat().st_size
        info = tarfile.TarInfo(arcname)
        info.size, info.mtime, info.mode = size, int(path.stat().st_mtime), 0o600
        with open(path, "rb") as fh:
            self._tar.addfile(info, fh)
        self.members[arcname] = {"sha256": digest, "size": size}

    def add_json(self, arcname: str, data: dict[str, Any], *, record: bool = True) -> None:
        """A JSON document."""
        import io

        raw = json.dumps(data, indent=2, sort_keys=True, default=str).encode("utf-8")
        info = tarfile.TarInfo(arcname)
        info.size, info.mtime, info.mode = len(raw), int(time.time()), 0o600
        self._tar.addfile(info, io.BytesIO(raw))
        if record:
            self.members[arcname] = {"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)}

    def close(self) -> None:
        """End the tar and the gzip stream (the underlying file stays open)."""
        self._tar.close()
        self._gzip.close()


def extract(plain_archive: Path, into: Path) -> dict[str, Any]:
    """Unpack a decrypted archive (safely: no links, no paths outside `into`) and check it against its
    manifest; returns the manifest. ArchiveError when a member is missing, extra or altered."""
    try:
        with tarfile.open(plain_archive, mode="r:gz") as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"the archive inside the backup is damaged ({exc})") from None
    manifest_path = into / MANIFEST
    if not manifest_path.is_file():
        raise ArchiveError("the backup has no manifest.json")
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    version = int(manifest.get("format", 0))
    if version > ARCHIVE_FORMAT:
        raise ArchiveError(
            f"made by a newer Rubin (archive format {version}; this version reads up to {ARCHIVE_FORMAT})"
        )
    members: dict[str, dict[str, Any]] = manifest.get("members", {})
    present = {p.relative_to(into).as_posix() for p in into.rglob("*") if p.is_file()} - {MANIFEST}
    if set(members) != present:
        missing, extra = sorted(set(members) - present), sorted(present - set(members))
        raise ArchiveError(f"the archive does not match its manifest (missing {missing}, unexpected {extra})")
    for name, meta in members.items():
        if sha256_file(into / name) != meta["sha256"]:
            raise ArchiveError(f"{name} does not match its checksum in the manifest")
    return manifest
