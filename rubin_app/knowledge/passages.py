"""What the chat shows of knowledge: the bases a user can attach, and a cited passage with its neighbours.

Every query filters by the acting user: their own bases and the shared ones, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.knowledge.models import KnowledgeBase, KnowledgeChunk, KnowledgeFile


@dataclass(frozen=True, slots=True)
class BaseOption:
    """A base the user can answer from."""

    id: int
    name: str
    shared: bool


@dataclass(frozen=True, slots=True)
class PassageView:
    """A cited passage between the text before and after it in its file."""

    filename: str
    page: int | None
    heading: str
    before: str
    text: str
    after: str


def _readable(user_id: int):  # type: ignore[no-untyped-def]
    return or_(col(KnowledgeBase.owner_id) == user_id, col(KnowledgeBase.shared).is_(True))


async def readable_bases(*, session: AsyncSession, user_id: int) -> list[BaseOption]:
    """The user's bases and the shared ones, by name."""
    rows = await session.exec(
        select(KnowledgeBase.id, KnowledgeBase.name, KnowledgeBase.shared)
        .where(_readable(user_id))
        .order_by(col(KnowledgeBase.name))
    )
    return [BaseOption(id=i or 0, name=n, shared=s) for i, n, s in rows.all()]


async def get_passage(*, session: AsyncSession, user_id: int, chunk_id: int, file_id: int) -> PassageView | None:
    """A chunk the user may read, with the end of the chunk before it and the start of the one after; None when it
    is gone or is no longer the cited file's (a re-used id)."""
    row = (
        await session.exec(
            select(KnowledgeChunk, KnowledgeFile.filename)
            .join(KnowledgeFile, col(KnowledgeFile.id) == KnowledgeChunk.file_id)
            .join(KnowledgeBase, col(KnowledgeBase.id) == KnowledgeChunk.kb_id)
            .where(col(KnowledgeChunk.id) == chunk_id, col(KnowledgeChunk.file_id) == file_id, _readable(user_id))
        )
    ).first()
    if row is None:
        return None
    chunk, filename = row
    near = await session.exec(
        select(KnowledgeChunk.ordinal, KnowledgeChunk.text).where(
            col(KnowledgeChunk.file_id) == chunk.file_id,
            col(KnowledgeChunk.ordinal).in_([chunk.ordinal - 1, chunk.ordinal + 1]),
        )
    )
    texts = dict(near.all())
    before, after = texts.get(chunk.ordinal - 1, ""), texts.get(chunk.ordinal + 1, "")
    return PassageView(
        filename=filename, page=chunk.page, heading=chunk.heading, before=_tail(before, chunk.text),
        text=chunk.text, after=_head(after, chunk.text),
    )  # fmt: skip


def _tail(before: str, text: str, keep: int = 400) -> str:
    """The end of the previous chunk, without the overlap the cited chunk repeats."""
    cut = before[-keep:]
    for size in range(min(len(cut), len(text)), 20, -1):
        if cut.endswith(text[:size]):
            return cut[: len(cut) - size]
    return cut


def _head(after: str, text: str, keep: int = 400) -> str:
    """The start of the next chunk, without the overlap it repeats of the cited one."""
    for size in range(min(len(after), len(text)), 20, -1):
        if after.startswith(text[-size:]):
            return after[size : size + keep]
    return after[:keep]
