"""Claims on ingestion jobs: which worker works on which file row.

A worker takes a queued file (or one whose claim went stale: its worker died) with one conditional update that
also increments `attempts`; that number is the claim's token, so every later write of the worker is conditional on
it and on the file still being active. A cancel, a delete or another worker's takeover makes those writes touch no
row: the worker sees `Lost` and stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlmodel import col, select

from rubin_app.core.clock import utcnow
from rubin_app.knowledge.models import ACTIVE_STATUSES, FileStatus, KnowledgeFile
from rubin_app.knowledge.service import Scope


class Lost(Exception):
    """The claim is no longer ours: the file was cancelled, deleted or taken over by another worker."""


@dataclass(frozen=True)
class Claim:
    """A file this worker works on; `attempt` is the claim's token in every conditional update."""

    file_id: int
    attempt: int


def due(cutoff: Any) -> Any:
    """Files to take: queued ones, and active ones whose claim was last refreshed before `cutoff`."""
    stale = and_(
        col(KnowledgeFile.status).in_([FileStatus.extracting, FileStatus.embedding]),
        or_(col(KnowledgeFile.claimed_at).is_(None), col(KnowledgeFile.claimed_at) < cutoff),
    )
    return or_(col(KnowledgeFile.status) == FileStatus.queued, stale)


def ours(claim: Claim) -> Any:
    """The claimed row, while the claim holds."""
    return and_(
        col(KnowledgeFile.id) == claim.file_id,
        col(KnowledgeFile.attempts) == claim.attempt,
        col(KnowledgeFile.status).in_(list(ACTIVE_STATUSES)),
    )


async def claim_next(scope: Scope, stale_seconds: float, *, not_after: datetime | None = None) -> Claim | None:
    """Take one queued (or stale) file, atomically (oldest first); None: nothing to do. A claim made before
    `not_after` counts as stale whatever its age (a single worker's previous process made it)."""
    now = utcnow()
    cutoff = now - timedelta(seconds=stale_seconds)
    condition = due(max(cutoff, not_after) if not_after is not None else cutoff)
    async with scope() as session:
        stmt = select(KnowledgeFile.id, KnowledgeFile.attempts).where(condition).order_by(col(KnowledgeFile.id))
        for file_id, attempts in (await session.exec(stmt.limit(8))).all():
            taken = await session.exec(
                update(KnowledgeFile)
                .where(col(KnowledgeFile.id) == file_id, col(KnowledgeFile.attempts) == attempts, condition)
                .values(status=FileStatus.extracting, claimed_at=now, attempts=attempts + 1, updated_at=now)
            )
            if taken.rowcount == 1 and file_id is not None:
                return Claim(file_id, attempts + 1)
    return None


async def touch(scope: Scope, claim: Claim, **values: Any) -> None:
    """Write to the claimed row and refresh the claim; Lost when it is no longer ours."""
    async with scope() as session:
        values = {"claimed_at": utcnow(), "updated_at": utcnow(), **values}
        done = await session.exec(update(KnowledgeFile).where(ours(claim)).values(**values))
        if done.rowcount != 1:
            raise Lost
