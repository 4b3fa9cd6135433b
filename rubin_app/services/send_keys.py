"""A question's send key: the page's own id for one send (assets/stream.js adds it to the chat's send event).

A page that loses its socket before it learns whether its question was saved sends it again after the reconnect,
with the same key. The key is saved with the question under a unique index per user, so the repeated send is
saved once: either its lookup finds the question, or its insert meets the first one's (`AlreadySent`).
"""

from __future__ import annotations

import re

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.models import Message

KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")
INDEX = "ux_messages_user_send_key"


class AlreadySent(Exception):
    """The question with this send key is saved already (in `conversation_id`)."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__("already_sent")
        self.conversation_id = conversation_id


def clean(value: object) -> str | None:
    """The send key of a send event's form, or None when it has none (or not a well-formed one: then the send is
    an ordinary one, never refused for its key)."""
    return value if isinstance(value, str) and KEY.fullmatch(value) else None


async def conversation_of(session: AsyncSession, user_id: int, key: str) -> str | None:
    """The conversation of the user's question saved with `key`, if there is one."""
    stmt = select(Message.conversation_id).where(Message.user_id == user_id, col(Message.send_key) == key)
    return (await session.exec(stmt)).first()


def is_conflict(exc: IntegrityError) -> bool:
    """Whether an insert failed on the send key's unique index (SQLite names the columns, PostgreSQL the index)."""
    text = str(exc.orig)
    return INDEX in text or "messages.send_key" in text
