"""Moving content from one owner to another: values are bound to their owner, so they are re-sealed."""

from __future__ import annotations

from sqlalchemy.orm import attributes
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.models.chat import Conversation, Message
from rubin_app.vault.orm import SEALED_FIELDS
from rubin_app.vault.service import get_vault


async def reseal_owner(session: AsyncSession, *, old_user_id: int, new_user_id: int) -> int:
    """Give every conversation and message of one user to another, re-sealed with the new owner's key."""
    vault = get_vault()
    await vault.prime(session, old_user_id)
    await vault.prime(session, new_user_id)
    moved = 0
    for model in (Conversation, Message):
        rows = (await session.exec(select(model).where(model.user_id == old_user_id))).all()
        for row in rows:  # opened by the load hook with the old owner's key
            row.user_id = new_user_id
            for attr in SEALED_FIELDS[model]:
                attributes.flag_modified(row, attr)  # sealed again on flush, for the new owner
            session.add(row)
            moved += 1
    await session.flush()
    return moved


async def shred_user_keys(session: AsyncSession, user_id: int) -> None:
    """Delete a user's data keys (crypto-shredding): whatever copies of their values remain never open again."""
    from sqlalchemy import delete

    from rubin_app.vault.models import UserKey

    await session.exec(delete(UserKey).where(col(UserKey.user_id) == user_id))
    get_vault().forget(user_id)
