"""Helpers the service tests share: a fresh user, what the database holds, a conversation's messages."""

from __future__ import annotations

from sqlmodel import func, select

from rubin_app.models import Conversation, Message
from rubin_app.services import chats
from rubin_app.services.db import session_scope
from tests.factories import make_user


async def new_user() -> int:
    """A fresh signed-up user's id (each test acts as its own user)."""
    async with session_scope() as session:
        user = await make_user(session)
    assert user.id is not None
    return user.id


async def counts() -> tuple[int, int]:
    """How many conversations and messages the database holds."""
    async with session_scope() as s:
        conversations = (await s.exec(select(func.count()).select_from(Conversation))).one()
        messages = (await s.exec(select(func.count()).select_from(Message))).one()
    return int(conversations), int(messages)


async def history(user_id: int, conversation_id: str) -> list[Message]:
    """A conversation's messages, as its owner reads them."""
    async with session_scope() as s:
        return list(await chats.list_messages(session=s, user_id=user_id, conversation_id=conversation_id))
