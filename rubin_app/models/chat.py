"""Conversations and messages."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Text, text
from sqlmodel import Field, SQLModel

from rubin_app.models.user import utcnow


class MessageRole(StrEnum):
    """Who wrote a message."""

    system = "system"
    user = "user"
    assistant = "assistant"


class MessageStatus(StrEnum):
    """Where an answer stands."""

    streaming = "streaming"
    complete = "complete"
    interrupted = "interrupted"
    error = "error"


def new_id() -> str:
    """A random, unguessable id for URLs."""
    return uuid.uuid4().hex


class ConversationBase(SQLModel):
    """Fields shared by the conversation schemas."""

    title: str = Field(default="", sa_type=Text)  # sealed (vault/): longer than the 200 characters shown
    model: str = Field(default="", max_length=200)


class Conversation(ConversationBase, table=True):
    """A chat owned by one user."""

    __tablename__ = "conversations"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    title_is_auto: bool = Field(default=True)
    # The knowledge the chat's questions are answered from: a JSON list of knowledge base ids, or "all".
    knowledge: str = Field(default="", max_length=2000, sa_column_kwargs={"server_default": text("''")})
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class ConversationPublic(ConversationBase):
    """What the UI shows of a conversation."""

    id: str
    updated_at: datetime


class MessageBase(SQLModel):
    """Fields shared by the message schemas."""

    role: MessageRole = Field(max_length=16)
    content: str = Field(default="")
    reasoning: str = Field(default="")
    model: str = Field(default="", max_length=200)
    status: MessageStatus = Field(default=MessageStatus.complete, max_length=16)
    error: str = Field(default="", max_length=32)
    error_detail: str = Field(default="", max_length=2000)


_STREAMING = text("status = 'streaming'")


class Message(MessageBase, table=True):
    """One turn of a conversation, with the answer's measurements."""

    __tablename__ = "messages"
    # Never reuse the id of a deleted message: a stale Stop must not hit a newer answer.
    # The recovery scan asks every few seconds which answers are streaming: a partial index keeps it cheap.
    __table_args__ = (
        Index("ix_messages_streaming", "id", sqlite_where=_STREAMING, postgresql_where=_STREAMING),
        Index("ux_messages_user_send_key", "user_id", "send_key", unique=True),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(foreign_key="conversations.id", index=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: int | None = None
    duration_ms: int | None = None
    # An answer's numbered sources and the memories it added (rubin_app/knowledge/citations.py); sealed.
    annotations: str = Field(default="", sa_type=Text, sa_column_kwargs={"server_default": text("''")})
    # A question's send key: the page's id for one send. A send the page repeats after a reconnect (it never
    # learned whether the first was saved) carries the same key, and the unique index saves it once.
    send_key: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class MessagePublic(MessageBase):
    """What the UI shows of a message."""

    id: int
    conversation_id: str
    completion_tokens: int | None = None
    ttft_ms: int | None = None
    duration_ms: int | None = None
