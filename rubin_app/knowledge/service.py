"""Knowledge bases and their files, as a user sees them: every query filters by the acting user.

A user reads their own bases and the shared ones (an admin published them); only the owner changes a base or its
files. Publishing is an admin's act, allowed only when the owner's groups allow knowledge sharing. Nothing here
commits: the caller's session scope does — except the two deletions, which take a scope because the search index
writes on connections of its own (SQLite: never inside our write transaction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from sqlalchemy import delete, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.accounts import groups
from rubin_app.core.clock import utcnow
from rubin_app.knowledge.models import ACTIVE_STATUSES, FileStatus, KnowledgeBase, KnowledgeChunk, KnowledgeFile
from rubin_app.models import Role, User
from rubin_app.services import audit, text
from rubin_app.services.chats import InputError

Scope = Callable[[], AbstractAsyncContextManager[AsyncSession]]
NAME_MAX = 200
DESCRIPTION_MAX = 2000
FILENAME_MAX = 255
MAX_BASES = 100  # per user
KB_SHARED = "knowledge_base_shared"
KB_UNSHARED = "knowledge_base_unshared"


class IndexCleaner(Protocol):
    """What the deletions need of the search index (rubin_app.knowledge.index.KnowledgeIndex)."""

    async def delete_file(self, file_id: int) -> None: ...

    async def delete_kb(self, kb_id: int) -> None: ...


def clean_name(name: str) -> str:
    """A base's name: one line of visible characters, 1-200 of them."""
    name = " ".join(text.strip_hidden(name or "").split())
    if not name or len(name) > NAME_MAX:
        raise InputError("kb_bad_name", max=NAME_MAX)
    return name


def clean_filename(name: str) -> str:
    """A file's name as shown: its last path part, visible characters, at most 255 of them."""
    name = " ".join(text.strip_hidden(name or "").replace("\\", "/").rsplit("/", 1)[-1].split())
    if len(name) > FILENAME_MAX:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: FILENAME_MAX - len(ext) - 2] + "…" + dot + ext) if dot and len(ext) < 16 else name[:FILENAME_MAX]
    return name or "document"


def _readable(user_id: int):  # type: ignore[no-untyped-def]
    return or_(col(KnowledgeBase.owner_id) == user_id, col(KnowledgeBase.shared).is_(True))


async def list_bases(*, session: AsyncSession, user_id: int) -> Sequence[KnowledgeBase]:
    """The user's own bases and the shared ones, own first, then by name."""
    stmt = select(KnowledgeBase).where(_readable(user_id))
    rows = (await session.exec(stmt)).all()
    return sorted(rows, key=lambda b: (b.owner_id != user_id, b.name.casefold(), b.id or 0))


async def get_base(*, session: AsyncSession, user_id: int, kb_id: int) -> KnowledgeBase | None:
    """A base the user may read (own or shared), else None."""
    stmt = select(KnowledgeBase).where(col(KnowledgeBase.id) == kb_id, _readable(user_id))
    return (await session.exec(stmt)).first()


async def own_base(*, session: AsyncSession, user_id: int, kb_id: int) -> KnowledgeBase:
    """A base the user owns; InputError kb_not_found (unreadable) or kb_not_owner (someone else's shared base)."""
    base = await get_base(session=session, user_id=user_id, kb_id=kb_id)
    if base is None:
        raise InputError("kb_not_found")
    if base.owner_id != user_id:
        raise InputError("kb_not_owner")
    return base


async def create_base(*, session: AsyncSession, user_id: int, name: str, description: str = "") -> KnowledgeBase:
    """A new, private base of the user."""
    name = clean_name(name)
    count = len((await session.exec(select(KnowledgeBase.id).where(KnowledgeBase.owner_id == user_id))).all())
    if count >= MAX_BASES:
        raise InputError("kb_too_many", max=MAX_BASES)
    base = KnowledgeBase(owner_id=user_id, name=name, description=text.strip_hidden(description)[:DESCRIPTION_MAX])
    session.add(base)
    await session.flush()
    return base


async def update_base(
    *, session: AsyncSession, user_id: int, kb_id: int, name: str | None = None, description: str | None = None
) -> KnowledgeBase:
    """Rename a base of the user or change its description."""
    base = await own_base(session=session, user_id=user_id, kb_id=kb_id)
    if name is not None:
        base.name = clean_name(name)
    if description is not None:
        base.description = text.strip_hidden(description)[:DESCRIPTION_MAX]
    base.updated_at = utcnow()
    session.add(base)
    await session.flush()
    return base


async def set_shared(*, session: AsyncSession, actor_id: int, kb_id: int, shared: bool, ip: str = "") -> KnowledgeBase:
    """Publish a base to everyone, or take it back: admins only, and only when the owner may share knowledge."""
    actor = await session.get(User, actor_id)
    if actor is None or actor.role != Role.admin:
        raise InputError("admin_only")
    base = await session.get(KnowledgeBase, kb_id)
    if base is None:
        raise InputError("kb_not_found")
    if shared and not (await groups.effective(session=session, user_id=base.owner_id)).knowledge_sharing:
        raise InputError("knowledge_sharing_not_allowed")
    if base.shared != shared:
        base.shared, base.updated_at = shared, utcnow()
        session.add(base)
        await audit.record(
            session=session, action=KB_SHARED if shared else KB_UNSHARED, user_id=base.owner_id, actor_id=actor_id,
            ip=ip, detail=f"knowledge base {base.id}",
        )  # fmt: skip
        await session.flush()
    return base


async def list_files(*, session: AsyncSession, user_id: int, kb_id: int) -> Sequence[KnowledgeFile]:
    """The files of a base the user may read, newest first; InputError kb_not_found otherwise."""
    if await get_base(session=session, user_id=user_id, kb_id=kb_id) is None:
        raise InputError("kb_not_found")
    stmt = select(KnowledgeFile).where(KnowledgeFile.kb_id == kb_id).order_by(col(KnowledgeFile.id).desc())
    return (await session.exec(stmt)).all()


async def get_file(*, session: AsyncSession, user_id: int, file_id: int) -> KnowledgeFile | None:
    """A file of a base the user may read, else None."""
    stmt = (
        select(KnowledgeFile)
        .join(KnowledgeBase, col(KnowledgeBase.id) == KnowledgeFile.kb_id)
        .where(col(KnowledgeFile.id) == file_id, _readable(user_id))
    )
    return (await session.exec(stmt)).first()


async def own_file(*, session: AsyncSession, user_id: int, file_id: int) -> KnowledgeFile:
    """A file in one of the user's own bases; InputError kb_file_not_found / kb_not_owner otherwise."""
    row = await get_file(session=session, user_id=user_id, file_id=file_id)
    if row is None:
        raise InputError("kb_file_not_found")
    if row.owner_id != user_id:
        raise InputError("kb_not_owner")
    return row


async def add_file(
    *, session: AsyncSession, user_id: int, kb_id: int, filename: str, size: int, sha256: str
) -> KnowledgeFile:
    """Queue a document for ingestion in one of the user's bases.

    The same content again in the base is refused (kb_duplicate_file, naming the file it duplicates) unless that
    one failed or was cancelled: then its row is queued again."""
    await own_base(session=session, user_id=user_id, kb_id=kb_id)
    stmt = select(KnowledgeFile).where(KnowledgeFile.kb_id == kb_id, KnowledgeFile.sha256 == sha256)
    row = (await session.exec(stmt)).first()
    if row is not None and row.status not in (FileStatus.failed, FileStatus.cancelled):
        raise InputError("kb_duplicate_file", name=row.filename)
    row = row or KnowledgeFile(kb_id=kb_id, owner_id=user_id, sha256=sha256, filename="")
    row.filename, row.size, row.kind, row.pages = clean_filename(filename), size, "", None
    row.status, row.progress, row.chunk_count, row.error, row.error_detail = FileStatus.queued, 0.0, 0, "", ""
    row.claimed_at, row.attempts, row.updated_at = None, 0, utcnow()
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:  # the same content uploaded twice at the same moment
        raise InputError("kb_duplicate_file", name=clean_filename(filename)) from None
    return row


async def cancel_file(*, session: AsyncSession, user_id: int, file_id: int) -> KnowledgeFile:
    """Stop a file's ingestion (a running job stops at its next batch and removes what it indexed of it)."""
    row = await own_file(session=session, user_id=user_id, file_id=file_id)
    if row.status in ACTIVE_STATUSES:
        row.status, row.updated_at = FileStatus.cancelled, utcnow()
        session.add(row)
        await session.flush()
    return row


async def delete_file(*, scope: Scope, index: IndexCleaner, user_id: int, file_id: int) -> KnowledgeFile:
    """Delete a file of the user with its chunks, then its vectors and index entries; returns the deleted row."""
    async with scope() as session:
        row = await own_file(session=session, user_id=user_id, file_id=file_id)
        await session.exec(delete(KnowledgeChunk).where(col(KnowledgeChunk.file_id) == file_id))
        await session.delete(row)
    await index.delete_file(file_id)  # after the commit: the index writes on its own connections
    return row


async def delete_base(*, scope: Scope, index: IndexCleaner, user_id: int, kb_id: int) -> list[int]:
    """Delete a base of the user with its files, chunks, vectors and index entries; returns the files' ids."""
    async with scope() as session:
        base = await own_base(session=session, user_id=user_id, kb_id=kb_id)
        ids = list((await session.exec(select(KnowledgeFile.id).where(KnowledgeFile.kb_id == kb_id))).all())
        await session.exec(delete(KnowledgeChunk).where(col(KnowledgeChunk.kb_id) == kb_id))
        await session.exec(delete(KnowledgeFile).where(col(KnowledgeFile.kb_id) == kb_id))
        await session.delete(base)
    await index.delete_kb(kb_id)
    return [i for i in ids if i is not None]
