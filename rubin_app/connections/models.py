"""The `model_connections` table: an OpenAI-compatible server an admin added (issue #15).

The zero-configuration first connection (LOCALAI_URL, or the bundled engine) is not a row: it comes from the
settings (id 0). The API key is stored sealed with the vault's key-encryption key (`api_key_sealed`, bound to
the row id) and never read back out to a page, an API answer or a log.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from rubin_app.core.clock import utcnow


class Connection(SQLModel, table=True):
    """One OpenAI-compatible server: where it is, its key (sealed), which of its models are offered and how."""

    __tablename__ = "model_connections"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=60, unique=True, index=True)
    base_url: str = Field(max_length=2048)
    api_key_sealed: str = Field(default="", max_length=4000)  # "<kek id>.<wrapped>" (vault keyring), "" = none
    prefix: str = Field(default="", max_length=40)  # put before its model names in the picker ("openai/")
    models: str = Field(default="[]", max_length=4000)  # JSON allow-list of upstream names; [] = every model
    capabilities: str = Field(default="{}", max_length=8000)  # JSON {upstream model: [capability, ...]} overrides
    enabled: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
