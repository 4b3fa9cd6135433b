"""The usage table (append-only; written in batches off the answer's path)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from rubin_app.core.clock import utcnow


class UsageRecord(SQLModel, table=True):
    """One request's tokens and timings."""

    __tablename__ = "usage_records"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    api_key_id: int | None = Field(default=None, index=True)  # no foreign key: a revoked key's usage stays
    model: str = Field(default="", max_length=200)
    prompt_tokens: int = Field(default=0)
    completion_tokens: int = Field(default=0)
    ttft_ms: int | None = Field(default=None)
    duration_ms: int | None = Field(default=None)
    status: str = Field(default="complete", max_length=20)  # complete, interrupted, error
    error: str = Field(default="", max_length=40)
    cached: bool = Field(default=False)
    source: str = Field(default="ui", max_length=10)  # ui, api (OpenAI-compatible), rest (/api/v1)
