"""Knowledge bases whose owner's account was deleted: their search index entries are removed after the deletion.

Deleting an account removes its bases, files and chunks by foreign-key cascade, in the deletion's transaction; the
search index (full-text and vector tables, partly on connections of their own) is not in that transaction. So the
deletion also writes a tombstone (`app_settings`, `knowledge_forget:<user id>`: the ids of the user's bases), in the
same transaction, and the ingestion loop of any worker removes those bases from the index and the tombstone.
Nothing of a deleted user's documents stays searchable or stored, whoever deleted the account and however.
"""

from __future__ import annotations

import json

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.core.clock import utcnow
from rubin_app.knowledge.models import KnowledgeBase
from rubin_app.models import AppSetting

PREFIX = "knowledge_forget:"


async def note_owner_deleted(*, session: AsyncSession, user_id: int) -> None:
    """Before a user's rows go: remember their bases' ids for the index (in the caller's transaction)."""
    ids = (await session.exec(select(KnowledgeBase.id).where(KnowledgeBase.owner_id == user_id))).all()
    if ids:
        session.add(AppSetting(key=f"{PREFIX}{user_id}", value=json.dumps(sorted(ids)), updated_at=utcnow()))


async def pending(*, session: AsyncSession) -> dict[str, list[int]]:
    """Tombstones waiting: key -> base ids."""
    rows = (await session.exec(select(AppSetting).where(col(AppSetting.key).startswith(PREFIX)))).all()
    return {r.key: [int(i) for i in json.loads(r.value or "[]")] for r in rows}
