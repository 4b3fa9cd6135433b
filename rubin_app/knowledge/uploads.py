"""Where an uploaded document waits for its ingestion job: DATA_DIR/knowledge/uploads/<file id>.

An upload is streamed to a staging file while its size is checked and its SHA-256 computed (a file over
KNOWLEDGE_MAX_FILE_MB is refused before it is all on disk); once its row exists the staging file is renamed
to the row's id. The job deletes it when the file is ready, failed or cancelled. Several workers on several
machines must share DATA_DIR (or run the job on one of them).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rubin_app.config import Settings
from rubin_app.knowledge import service
from rubin_app.knowledge.models import FileStatus, KnowledgeFile
from rubin_app.services.chats import InputError

READ_BLOCK = 1 << 20  # bytes read from an upload at a time
STAGING_SUFFIX = ".part"
STAGING_MAX_AGE = 3600.0  # seconds after which a staging file is a crash's leftover, not an upload in progress


class Readable(Protocol):
    """An uploaded file as Starlette and Reflex hand it over."""

    async def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class Staged:
    """An upload on disk, not yet tied to a file row."""

    path: Path
    size: int
    sha256: str


def upload_dir(settings: Settings) -> Path:
    """The folder of waiting uploads (made on first use, this user only)."""
    path = settings.data_dir / "knowledge" / "uploads"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def max_bytes(settings: Settings) -> int:
    """KNOWLEDGE_MAX_FILE_MB in bytes."""
    return settings.knowledge_max_file_mb * 1024 * 1024


def stored_path(settings: Settings, file_id: int) -> Path:
    """Where the bytes of file `file_id` wait for the job."""
    return upload_dir(settings) / str(file_id)


async def blocks(source: Readable) -> AsyncIterator[bytes]:
    """The content of an uploaded file, a block at a time."""
    while block := await source.read(READ_BLOCK):
        yield block


async def stage(settings: Settings, content: AsyncIterator[bytes], *, limit: int | None = None) -> Staged:
    """Write an upload to a staging file, hashing it; InputError("kb_file_too_large") past the limit (nothing kept)."""
    limit = max_bytes(settings) if limit is None else limit
    path = upload_dir(settings) / f"{secrets.token_hex(8)}{STAGING_SUFFIX}"
    digest, size = hashlib.sha256(), 0
    try:
        with path.open("xb") as out:
            async for block in content:
                size += len(block)
                if size > limit:
                    raise InputError("kb_file_too_large", limit_mb=limit // (1024 * 1024))
                digest.update(block)
                out.write(block)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Staged(path=path, size=size, sha256=digest.hexdigest())


async def enqueue(
    *, scope: service.Scope, settings: Settings, user_id: int, kb_id: int, filename: str, content: AsyncIterator[bytes]
) -> KnowledgeFile:
    """Store an upload and queue it in one of the user's bases (InputError: too large, duplicate, not the user's).

    The caller wakes the ingestion job. Nothing is left behind when it is refused."""
    staged = await stage(settings, content)
    kept: int | None = None
    try:
        async with scope() as session:
            row = await service.add_file(
                session=session, user_id=user_id, kb_id=kb_id, filename=filename, size=staged.size,
                sha256=staged.sha256,
            )  # fmt: skip
            assert row.id is not None
            keep(settings, staged, row.id)  # before the commit: the job never sees a row without its bytes
            kept = row.id
    except BaseException:
        discard(staged.path)
        if kept is not None:
            drop(settings, kept)
        raise
    return row


async def cancel(*, scope: service.Scope, settings: Settings, user_id: int, file_id: int) -> KnowledgeFile:
    """Cancel a file's ingestion; a file nobody works on yet loses its waiting bytes at once (a running job removes
    them itself when it sees the cancel)."""
    async with scope() as session:
        row = await service.get_file(session=session, user_id=user_id, file_id=file_id)
        waiting = row is not None and row.status == FileStatus.queued
        row = await service.cancel_file(session=session, user_id=user_id, file_id=file_id)
    if waiting:
        drop(settings, file_id)
    return row


def keep(settings: Settings, staged: Staged, file_id: int) -> None:
    """The staged upload becomes the waiting bytes of file `file_id`."""
    os.replace(staged.path, stored_path(settings, file_id))


def discard(path: Path) -> None:
    """Remove a staged or stored upload (gone already: fine)."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def drop(settings: Settings, file_id: int) -> None:
    """Remove the waiting bytes of file `file_id`."""
    discard(stored_path(settings, file_id))


def read(settings: Settings, file_id: int) -> bytes | None:
    """The waiting bytes of file `file_id` (None: not there, e.g. lost with a data directory)."""
    try:
        return stored_path(settings, file_id).read_bytes()
    except FileNotFoundError:
        return None


def leftovers(settings: Settings, keep_ids: set[int]) -> list[Path]:
    """Stored or staged uploads no waiting file row needs (a crash between staging and the row, an old run)."""
    found, now = [], time.time()
    for path in upload_dir(settings).iterdir():
        if path.name.endswith(STAGING_SUFFIX):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > STAGING_MAX_AGE:
                    found.append(path)
        elif not path.name.isdigit() or int(path.name) not in keep_ids:
            found.append(path)
    return found
