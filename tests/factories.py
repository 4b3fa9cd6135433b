"""Plain factory functions, one per entity: they write real rows through a real session."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.models import AuditEvent, Conversation, Message, MessageRole, MessageStatus, Role, User
from rubin_app.models.user import utcnow


async def make_user(session: AsyncSession, *, external_id: str | None = None, display_name: str = "") -> User:
    """A user with a unique external id."""
    user = User(external_id=external_id or f"user-{uuid.uuid4().hex[:10]}", display_name=display_name)
    session.add(user)
    await session.flush()
    assert user.id is not None
    return user


async def make_conversation(
    session: AsyncSession,
    *,
    user_id: int,
    title: str = "A conversation",
    model: str = "standin-model",
    updated_at: datetime | None = None,
) -> Conversation:
    """A conversation owned by `user_id`."""
    conversation = Conversation(user_id=user_id, title=title, model=model)
    if updated_at is not None:
        conversation.updated_at = updated_at
    session.add(conversation)
    await session.flush()
    return conversation


async def make_message(
    session: AsyncSession,
    *,
    conversation: Conversation,
    role: MessageRole = MessageRole.user,
    content: str = "Hello",
    status: MessageStatus = MessageStatus.complete,
    model: str = "",
    updated_at: datetime | None = None,
) -> Message:
    """A message in `conversation`, owned by the conversation's user."""
    message = Message(
        conversation_id=conversation.id,
        user_id=conversation.user_id,
        role=role,
        content=content,
        status=status,
        model=model or (conversation.model if role == MessageRole.assistant else ""),
    )
    if updated_at is not None:
        message.updated_at = updated_at
    session.add(message)
    await session.flush()
    assert message.id is not None
    return message


async def make_exchange(
    session: AsyncSession, *, conversation: Conversation, question: str = "Hi", answer: str = "Hello!"
) -> tuple[Message, Message]:
    """A user message and its complete answer."""
    asked = await make_message(session, conversation=conversation, role=MessageRole.user, content=question)
    answered = await make_message(session, conversation=conversation, role=MessageRole.assistant, content=answer)
    return asked, answered


# --------------------------------------------------------------------------- accounts

# A cheap argon2 profile: rows made here verify fast (sign-in re-hashes them with the real profile).
_fast_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


async def make_account(
    session: AsyncSession,
    *,
    email: str,
    role: Role = Role.user,
    provider: str = "local",
    password: str | None = None,
    display_name: str = "",
) -> User:
    """A signed-up account written directly (no sign-up rules): local when a password is given."""
    user = User(
        external_id=f"{provider}:{email}",
        email=email,
        display_name=display_name or email.split("@")[0],
        provider=provider,
        role=role,
        password_hash=_fast_hasher.hash(password) if password is not None else None,
    )
    session.add(user)
    await session.flush()
    assert user.id is not None
    return user


async def make_audit_event(
    session: AsyncSession,
    *,
    action: str,
    ok: bool = False,
    email: str | None = None,
    ip: str = "",
    age: timedelta = timedelta(0),
) -> AuditEvent:
    """An audit event that happened `age` ago."""
    event = AuditEvent(action=action, ok=ok, email=email, ip=ip, created_at=utcnow() - age)
    session.add(event)
    await session.flush()
    return event
