"""Sign-in sessions, the audit trail and instance-wide policy switches."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from rubin_app.models.user import utcnow


class AuthSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "auth_sessions"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = Field(default=None)
    last_seen_at: datetime | None = Field(default=None)  # last use, kept to the minute (idle timeout)
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=300)
    reauth_at: datetime | None = Field(default=None)  # last password re-entry / fresh provider sign-in (admin)


class AuditEvent(SQLModel, table=True):
    """One security-relevant event; kept when the user it names is deleted (no foreign key)."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    action: str = Field(max_length=40, index=True)
    ok: bool = Field(default=True)
    user_id: int | None = Field(default=None, index=True)
    actor_id: int | None = Field(default=None)
    email: str | None = Field(default=None, max_length=254, index=True)
    ip: str = Field(default="", max_length=64, index=True)
    detail: str = Field(default="", max_length=500)


class AppSetting(SQLModel, table=True):
    """An instance-wide switch an admin changed (JSON value); absent: the settings' default."""

    __tablename__ = "app_settings"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(default="", max_length=2000)
    updated_at: datetime = Field(default_factory=utcnow)


class UserLimit(SQLModel, table=True):
    """An admin's per-user override of the default limits (None: the default from settings)."""

    __tablename__ = "user_limits"

    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    requests_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)
    concurrent: int | None = Field(default=None, ge=0)
    updated_at: datetime = Field(default_factory=utcnow)
