"""Users: every conversation and message belongs to one."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import text
from sqlmodel import Field, SQLModel

from rubin_app.core.clock import utcnow

__all__ = ["Role", "User", "UserBase", "UserPublic", "utcnow"]


class Role(StrEnum):
    """What a user may do: admins run the instance, pending users wait for approval."""

    admin = "admin"
    user = "user"
    pending = "pending"


class UserBase(SQLModel):
    """Fields shared by the user schemas."""

    external_id: str = Field(max_length=255, unique=True, index=True)  # "<provider>:<subject>" or "local:<email>"
    display_name: str = Field(default="", max_length=200)


class User(UserBase, table=True):
    """A person using Rubin."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str | None = Field(default=None, max_length=254, unique=True, index=True)
    password_hash: str | None = Field(default=None, max_length=255)  # local accounts only
    provider: str = Field(default="local", max_length=32, sa_column_kwargs={"server_default": "local"})
    role: Role = Field(default=Role.user, sa_column_kwargs={"server_default": "user"})
    language: str = Field(
        default="", max_length=8, sa_column_kwargs={"server_default": text("''")}
    )  # "": the browser's
    theme: str = Field(
        default="", max_length=8, sa_column_kwargs={"server_default": text("''")}
    )  # "", "light", "dark" ("": follow the system)
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = Field(default=None)
    chat_retention_days: int | None = Field(default=None, ge=1)  # None: the instance's (services/retention.py)


class UserPublic(SQLModel):
    """What the account and admin pages show of a user."""

    id: int
    email: str | None
    display_name: str
    provider: str
    role: Role
    language: str
    theme: str
    created_at: datetime
    last_login_at: datetime | None
