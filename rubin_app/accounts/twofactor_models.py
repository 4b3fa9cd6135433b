"""Two-factor sign-in: a user's TOTP secret, recovery codes, passkeys, and password steps awaiting a code."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from rubin_app.core.clock import utcnow


class TotpSecret(SQLModel, table=True):
    """A user's authenticator secret (AES-256-GCM encrypted); on once `enabled_at` is set."""

    __tablename__ = "totp_secrets"

    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    secret: str = Field(max_length=255)  # accounts/totp.py's stored form, never the plain secret
    created_at: datetime = Field(default_factory=utcnow)
    enabled_at: datetime | None = Field(default=None)  # None: set up but not confirmed with a code yet
    last_step: int | None = Field(default=None)  # the 30 s time step of the last accepted code (no replay)


class RecoveryCode(SQLModel, table=True):
    """One single-use recovery code: only its keyed hash is kept."""

    __tablename__ = "recovery_codes"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    code_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    used_at: datetime | None = Field(default=None)


class PendingLogin(SQLModel, table=True):
    """A correct password waiting for its second factor: the browser holds a random token, the table its hash."""

    __tablename__ = "pending_logins"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    done_at: datetime | None = Field(default=None)  # signed in (a token opens one session only)
    ip: str = Field(default="", max_length=64)
    challenge: str = Field(default="", max_length=128)  # the passkey challenge last asked for (base64url)


class Passkey(SQLModel, table=True):
    """A WebAuthn credential of a user with two-factor sign-in: a second factor instead of a code."""

    __tablename__ = "passkeys"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    credential_id: str = Field(max_length=1400, unique=True)  # base64url
    public_key: str = Field(max_length=2000)  # base64url of the COSE key
    sign_count: int = Field(default=0)
    name: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = Field(default=None)
