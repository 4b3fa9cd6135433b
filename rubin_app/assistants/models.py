"""The assistants table: a user's (or, shared by an admin, everyone's) configured model."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from rubin_app.core.clock import utcnow

PREFIX = "asst:"  # an assistant's model name in the picker and the API: "asst:<slug>"


class Assistant(SQLModel, table=True):
    """A base model plus a name, avatar, system prompt, parameters, attached knowledge and starter prompts."""

    __tablename__ = "assistants"
    __table_args__ = (UniqueConstraint("owner_id", "slug", name="uq_assistants_owner_slug"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    slug: str = Field(max_length=64)  # stable: "asst:<slug>" names it (kept when renamed)
    shared: bool = Field(default=False, index=True)  # an admin published it to everyone
    name: str = Field(max_length=80)
    description: str = Field(default="", max_length=500)
    emoji: str = Field(default="", max_length=16)
    base_model: str = Field(max_length=200)
    system_prompt: str = Field(default="", sa_type=Text)
    temperature: float | None = Field(default=None)
    max_tokens: int | None = Field(default=None)
    context_budget: int | None = Field(default=None)  # tokens of history; None: CONTEXT_TOKEN_BUDGET
    knowledge_ids: str = Field(default="[]", max_length=2000)  # JSON list of knowledge base ids
    starters: str = Field(default="[]", sa_type=Text)  # JSON list of starter prompts
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def model_name(self) -> str:
        """What the picker and the API call it."""
        return PREFIX + self.slug
