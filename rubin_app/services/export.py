"""A user's data export: everything Rubin keeps about them, as JSON-ready data (read a page at a time)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.assistants import io as assistant_io
from rubin_app.assistants import service as assistants
from rubin_app.memory import instructions
from rubin_app.memory import service as memories
from rubin_app.models import Conversation, Message, User
from rubin_app.models.user import utcnow
from rubin_app.services.chats import InputError
from rubin_app.vault.service import get_vault


async def export_data(*, session: AsyncSession, user_id: int, page: int = 500) -> dict[str, Any]:
    """Everything Rubin keeps about the user, as JSON-ready data.

    Messages are read `page` at a time (plain columns, not ORM objects) and the event loop is given back
    between pages: an account with a hundred thousand messages must not stall everyone else's events.
    Read it in one transaction (a read-only session) for a consistent snapshot.
    """
    user = await session.get(User, user_id)
    if user is None:
        raise InputError("account_not_found")
    cipher = await get_vault().prime(session, user_id)  # column selects: opened here, not by the ORM hooks
    user_data = dict(
        email=user.email, display_name=user.display_name, provider=user.provider, language=user.language,
        theme=user.theme, created_at=user.created_at.isoformat(),
    )  # fmt: skip
    conversation_columns = (Conversation.id, Conversation.title, Conversation.model, Conversation.created_at,
                            Conversation.updated_at)  # fmt: skip
    convs = (
        await session.exec(
            select(*conversation_columns)
            .where(Conversation.user_id == user_id)
            .order_by(col(Conversation.created_at), col(Conversation.id))
        )
    ).all()
    message_columns = (Message.id, Message.conversation_id, Message.role, Message.content, Message.reasoning,
                       Message.model, Message.status, Message.created_at)  # fmt: skip
    by_conv: dict[str, list[dict[str, Any]]] = {}
    after = 0
    while True:
        rows = (
            await session.exec(
                select(*message_columns)
                .where(Message.user_id == user_id, col(Message.id) > after)
                .order_by(col(Message.id))
                .limit(page)
            )
        ).all()
        for m_id, conversation_id, role, content, reasoning, model, status, created_at in rows:
            message = dict(
                role=str(role), content=cipher.show("messages.content", content, m_id),
                reasoning=cipher.show("messages.reasoning", reasoning, m_id) or None, model=model, status=str(status),
                created_at=created_at.isoformat(),
            )  # fmt: skip
            by_conv.setdefault(conversation_id, []).append(message)
            after = m_id
        if len(rows) < page:
            break
        await asyncio.sleep(0)  # other users' events run between two pages
    conversations: list[dict[str, Any]] = []
    for c_id, title, model, created_at, updated_at in convs:
        conversation = dict(
            id=c_id, title=cipher.show("conversations.title", title, c_id), model=model,
            created_at=created_at.isoformat(), updated_at=updated_at.isoformat(),
            messages=by_conv.get(c_id, []),
        )  # fmt: skip
        conversations.append(conversation)
    return {
        "format": "rubin-export/1",
        "exported_at": utcnow().isoformat(),
        "user": user_data,
        "personal": await _personal(session, user_id),
        "conversations": conversations,
    }


async def _personal(session: AsyncSession, user_id: int) -> dict[str, Any]:
    """Custom instructions, the memory switch and list, and the user's own assistants (their export file's form)."""
    about, style = await instructions.get_instructions(session=session, user_id=user_id)
    rows = await memories.list_memories(session=session, user_id=user_id)
    own = [a for a in await assistants.list_assistants(session=session, user_id=user_id) if a.owner_id == user_id]
    return {
        "instructions": {"about": about, "style": style},
        "memory_enabled": await instructions.memory_enabled(session=session, user_id=user_id),
        "memories": [{"text": m.text, "enabled": m.enabled, "created_at": m.created_at.isoformat()} for m in rows],
        "assistants": assistant_io.export_document([assistants.spec_from(a) for a in own]),
    }
