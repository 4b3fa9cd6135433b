"""Password checks reserved before they run, so lockouts hold under any concurrency."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from rubin_app.models.user import utcnow


class LoginAttempt(SQLModel, table=True):
    """One password check (or sign-up): written 'pending' before Argon2 runs, then 'failed' or 'ok'."""

    __tablename__ = "login_attempts"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    settled_at: datetime | None = Field(default=None)
    kind: str = Field(default="sign_in", max_length=16)  # sign_in, password (account page), sign_up
    status: str = Field(default="pending", max_length=8)  # pending, failed, ok
    email: str = Field(default="", max_length=254, index=True)
    ip: str = Field(default="", max_length=64, index=True)
    source: str = Field(default="", max_length=80)  # the pair's other half: "ip:…", "device:…" or "session:…"
    known: bool = Field(default=False)  # a known device or a signed-in session: exempt from the wide throttles
