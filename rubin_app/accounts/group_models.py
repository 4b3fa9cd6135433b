"""Groups of users and the feature permissions each grants (issue #13)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from rubin_app.core.clock import utcnow


class Group(SQLModel, table=True):
    """A named group: its members may use `models` (empty: every model) and the features switched on."""

    __tablename__ = "user_groups"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True, index=True)
    models: str = Field(default="[]", max_length=4000)  # JSON list of model ids; [] = every model
    api_keys: bool = Field(default=True)
    webhooks: bool = Field(default=True)
    knowledge_sharing: bool = Field(default=True)  # knowledge bases may be published (knowledge.service)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class GroupMember(SQLModel, table=True):
    """A user in a group (a user may be in several)."""

    __tablename__ = "user_group_members"

    group_id: int = Field(foreign_key="user_groups.id", primary_key=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", primary_key=True, index=True, ondelete="CASCADE")
    added_at: datetime = Field(default_factory=utcnow)
