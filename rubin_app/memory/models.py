"""Personalisation tables: a user's custom instructions and memory switch, and their long-term memories."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from rubin_app.core.clock import utcnow


class Personalisation(SQLModel, table=True):
    """Custom instructions ("about me", "how to answer") and the memory on/off switch of one user."""

    __tablename__ = "user_personalisation"

    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    about: str = Field(default="", sa_type=Text)
    style: str = Field(default="", sa_type=Text)  # how Rubin should answer
    memory_enabled: bool = Field(default=True)
    updated_at: datetime = Field(default_factory=utcnow)


class Memory(SQLModel, table=True):
    """One short fact about a user that Rubin remembers across chats."""

    __tablename__ = "memories"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    text: str = Field(sa_type=Text)
    enabled: bool = Field(default=True)
    source_conversation_id: str | None = Field(default=None, max_length=32)  # the chat it came from (no FK)
    embedding: str | None = Field(default=None, sa_type=Text)  # `text`'s vector: L2-normalised float32, base64
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
