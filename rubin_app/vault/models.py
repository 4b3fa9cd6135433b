"""The user_keys table: each user's data key, wrapped by a key-encryption key."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from rubin_app.core.clock import utcnow


class UserKey(SQLModel, table=True):
    """One data key. Deleting the user deletes it (crypto-shredding): their values no longer open anywhere."""

    __tablename__ = "user_keys"
    # Ids name data keys inside stored values: never reuse one.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    kek_id: str = Field(max_length=16, index=True)  # which key-encryption key wrapped it
    wrapped: str = Field(max_length=200)  # base64(nonce + AES-GCM(data key))
    created_at: datetime = Field(default_factory=utcnow)
    rewrapped_at: datetime | None = Field(default=None)
