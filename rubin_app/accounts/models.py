"""API keys: a program acting as its user."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from rubin_app.core.clock import utcnow


class ApiKey(SQLModel, table=True):
    """One named key of a user: the key itself is shown once; the table keeps its SHA-256 and a prefix."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16)  # the first characters, to recognise a key in lists
    key_hash: str = Field(max_length=64, unique=True, index=True)
    scopes: str = Field(default="chat", max_length=200)  # space-separated
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = Field(default=None)
    revoked_at: datetime | None = Field(default=None)
    last_used_at: datetime | None = Field(default=None)
    last_used_ip: str = Field(default="", max_length=64)
    requests_per_minute: int | None = Field(default=None, ge=0)  # on top of the user's limits
    tokens_per_day: int | None = Field(default=None, ge=0)
