"""Users: every conversation and message belongs to one."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Timezone-aware now, stored as UTC."""
    return datetime.now(UTC)


class UserBase(SQLModel):
    """Fields shared by the user schemas."""

    external_id: str = Field(max_length=255, unique=True, index=True)
    display_name: str = Field(default="", max_length=200)


class User(UserBase, table=True):
    """A person using Rubin; until login lands, one local user owns everything."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
