"""Conversations and messages. Every call takes the acting user and filters by it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, update
from sqlalchemy import text as sql
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.models import Conversation, Message, MessageRole, MessageStatus, User
from rubin_app.models.user import utcnow
from rubin_app.services import text as text_rules
from rubin_app.vault.service import get_vault
from rubin_app.webhooks import events as webhook_events

LOCAL_USER = "local"
TITLE_MAX = 200
MODEL_TEXT_FIELDS = ("content", "reasoning", "error_detail")  # message fields LocalAI's text lands in


class InputError(ValueError):
    """Input a user can fix; `code` names the message the UI shows."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def clean_title(title: str) -> str:
    """One line, trimmed, at most TITLE_MAX characters, without control or invisible format characters."""
    title = " ".join(word for word in (text_rules.strip_hidden(w) for w in title.split()) if word)
    return title[: TITLE_MAX - 1] + "…" if len(title) > TITLE_MAX else title


def check_message_text(text: str, max_chars: int) -> str:
    """Validate a message a user wants to send; return it as it will be saved or raise InputError.

    A NUL or a lone surrogate is refused (they cannot be saved); other control characters but tab,
    newline and carriage return are removed.
    """
    if text_rules.has_unstorable(text):
        raise InputError("bad_characters")
    text = text_rules.strip_controls(text_rules.join_surrogate_pairs(text))
    if not text.strip():
        raise InputError("empty_message")
    if len(text) > max_chars:
        raise InputError("message_too_long", length=len(text), limit=max_chars)
    return text


async def get_or_create_local_user(*, session: AsyncSession) -> User:
    """The single local user that owns everything until login lands."""
    user = (await session.exec(select(User).where(User.external_id == LOCAL_USER))).first()
    if user is None:
        user = User(external_id=LOCAL_USER, display_name="Local user")
        session.add(user)
        await session.flush()
    return user


async def list_conversations(
    *, session: AsyncSession, user_id: int, query: str = "", limit: int = 500, offset: int = 0
) -> Sequence[Conversation]:
    """The user's conversations, newest first, optionally filtered by title (case-insensitive substring);
    `offset`/`limit` page through them."""
    await get_vault().prime(session, user_id)
    stmt = select(Conversation).where(Conversation.user_id == user_id)
    stmt = stmt.order_by(col(Conversation.updated_at).desc(), col(Conversation.id))
    needle = query.strip().casefold()
    offset = max(0, offset)
    if not needle:
        return (await session.exec(stmt.offset(offset).limit(limit))).all()
    # Filtered in Python: SQL lower()/LIKE only fold ASCII on SQLite (and under a C locale on PostgreSQL),
    # so "рубин" would not find "Рубин". A user's own conversation list is small enough.
    found = [c for c in (await session.exec(stmt)).all() if needle in c.title.casefold()]
    return found[offset : offset + limit]


async def get_conversation(*, session: AsyncSession, user_id: int, conversation_id: str) -> Conversation | None:
    """One conversation of the user, or None (also for other users' ids)."""
    await get_vault().prime(session, user_id)
    stmt = select(Conversation).where(Conversation.id == conversation_id, Conversation.user_id == user_id)
    return (await session.exec(stmt)).first()


async def create_conversation(*, session: AsyncSession, user_id: int, model: str, title: str = "") -> Conversation:
    """Start a new conversation."""
    await get_vault().prime(session, user_id)
    conversation = Conversation(user_id=user_id, model=model, title=clean_title(title))
    session.add(conversation)
    await session.flush()
    await webhook_events.emit(
        session, event_type="conversation.created", user_id=user_id,
        data={"conversation_id": conversation.id, "title": conversation.title, "model": model},
    )  # fmt: skip
    return conversation


async def update_conversation(
    *,
    session: AsyncSession,
    user_id: int,
    conversation_id: str,
    title: str | None = None,
    model: str | None = None,
    auto_title: bool = False,
) -> Conversation | None:
    """Rename or change the model; an automatic title never overwrites a user's title."""
    conversation = await get_conversation(session=session, user_id=user_id, conversation_id=conversation_id)
    if conversation is None:
        return None
    if title is not None:
        title = clean_title(title)
        if not title:
            raise InputError("empty_title")
        if auto_title and not conversation.title_is_auto:
            return conversation
        conversation.title = title
        conversation.title_is_auto = auto_title
    if model is not None:
        conversation.model = model
    session.add(conversation)
    await session.flush()
    return conversation


async def delete_conversation(*, session: AsyncSession, user_id: int, conversation_id: str) -> bool:
    """Delete a conversation and its messages; False when not found."""
    conversation = await get_conversation(session=session, user_id=user_id, conversation_id=conversation_id)
    if conversation is None:
        return False
    await session.exec(delete(Message).where(col(Message.conversation_id) == conversation_id))  # type: ignore[call-overload]
    await session.delete(conversation)
    await session.flush()
    await webhook_events.emit(
        session, event_type="conversation.deleted", user_id=user_id, data={"conversation_id": conversation_id}
    )
    return True


async def list_messages(
    *,
    session: AsyncSession,
    user_id: int,
    conversation_id: str,
    before_id: int | None = None,
    limit: int | None = None,
) -> Sequence[Message]:
    """Messages of one of the user's conversations, oldest first.

    Paged (a long chat opens with its newest page, older pages load on scroll): `before_id` keeps only
    messages older than that id, `limit` keeps only the newest `limit` of them (still oldest first).
    """
    await get_vault().prime(session, user_id)
    stmt = select(Message).where(Message.conversation_id == conversation_id, Message.user_id == user_id)
    if before_id is not None:
        stmt = stmt.where(col(Message.id) < before_id)
    if limit is None:
        return (await session.exec(stmt.order_by(col(Message.id)))).all()
    newest = (await session.exec(stmt.order_by(col(Message.id).desc()).limit(max(0, limit)))).all()
    return list(reversed(newest))


class Turn(Protocol):
    """What a model's context needs of a message (a row of `list_turns`)."""

    id: int
    role: MessageRole
    content: str
    status: MessageStatus


async def list_turns(
    *, session: AsyncSession, user_id: int, conversation_id: str, before_id: int | None = None, limit: int
) -> Sequence[Turn] | None:
    """The newest `limit` messages of one of the user's conversations (older than `before_id` when given),
    oldest first, as (id, role, content, status) rows: no whole objects are built. None when the
    conversation is not the user's. One query (it is on the path to an answer's first token)."""
    cipher = await get_vault().prime(session, user_id)  # a column select: opened here, not by the ORM hooks
    joined = (Message.conversation_id == Conversation.id) & (Message.user_id == user_id)
    if before_id is not None:
        joined = joined & (col(Message.id) < before_id)
    stmt = (
        select(Conversation.id, Message.id, Message.role, Message.content, Message.status)
        .outerjoin(Message, joined)  # type: ignore[arg-type]
        .where(Conversation.id == conversation_id, Conversation.user_id == user_id)
        .order_by(col(Message.id).desc())
        .limit(limit)
    )
    rows = (await session.exec(stmt)).all()
    if not rows:
        return None
    return [
        _TurnRow(row[1], row[2], cipher.show("messages.content", row[3], row[1]), row[4])
        for row in reversed(rows)
        if row[1] is not None
    ]


@dataclass(frozen=True, slots=True)
class _TurnRow:
    id: int
    role: MessageRole
    content: str
    status: MessageStatus


async def get_message(*, session: AsyncSession, user_id: int, message_id: int) -> Message | None:
    """One message of the user, or None."""
    await get_vault().prime(session, user_id)
    stmt = select(Message).where(Message.id == message_id, Message.user_id == user_id)
    return (await session.exec(stmt)).first()


async def create_message(
    *,
    session: AsyncSession,
    user_id: int,
    conversation_id: str,
    role: MessageRole,
    content: str = "",
    model: str = "",
    status: MessageStatus = MessageStatus.complete,
    annotations: str = "",
    send_key: str | None = None,
) -> Message:
    """Append a message and bump the conversation to the top of the list (`send_key`: services/send_keys.py)."""
    await get_vault().prime(session, user_id)
    content = text_rules.for_storage(content)
    message = Message(
        user_id=user_id, conversation_id=conversation_id, role=role, content=content, model=model, status=status,
        annotations=annotations, send_key=send_key,
    )  # fmt: skip
    session.add(message)
    await touch_conversation(session=session, user_id=user_id, conversation_id=conversation_id)
    await session.flush()
    return message


async def touch_conversation(*, session: AsyncSession, user_id: int, conversation_id: str) -> None:
    """Mark a conversation as just used."""
    await session.exec(
        update(Conversation)  # type: ignore[call-overload]
        .where(col(Conversation.id) == conversation_id, col(Conversation.user_id) == user_id)
        .values(updated_at=utcnow())
    )


async def update_message(*, session: AsyncSession, user_id: int, message_id: int, **fields: object) -> Message | None:
    """Change fields of one of the user's messages (a NUL or lone surrogate in a text field becomes U+FFFD)."""
    message = await get_message(session=session, user_id=user_id, message_id=message_id)
    if message is None:
        return None
    for name, value in fields.items():
        if name in MODEL_TEXT_FIELDS and isinstance(value, str):
            value = text_rules.for_storage(value)
        setattr(message, name, value)
    message.updated_at = utcnow()
    session.add(message)
    await session.flush()
    return message


async def delete_messages_after(*, session: AsyncSession, user_id: int, conversation_id: str, message_id: int) -> int:
    """Delete the user's messages that come after `message_id` in a conversation."""
    result = await session.exec(
        delete(Message).where(  # type: ignore[call-overload]
            col(Message.conversation_id) == conversation_id,
            col(Message.user_id) == user_id,
            col(Message.id) > message_id,
        )
    )
    return int(result.rowcount or 0)


async def streaming_answers(*, session: AsyncSession) -> list[tuple[int, int]]:
    """(message id, owner id) of every answer marked streaming (maintenance, all users: the recovery scan). The
    condition is literal SQL so that both databases use the partial index `ix_messages_streaming`."""
    stmt = select(Message.id, Message.user_id).where(sql("messages.status = 'streaming'"))
    return [(int(mid), int(uid)) for mid, uid in (await session.exec(stmt)).all() if mid is not None]


async def answer_owner(*, session: AsyncSession, message_id: int) -> int | None:
    """The owner of a streaming answer (maintenance: a worker taking it over then acts as that user), or None."""
    stmt = select(Message.user_id).where(Message.id == message_id, sql("messages.status = 'streaming'"))
    return (await session.exec(stmt)).first()
