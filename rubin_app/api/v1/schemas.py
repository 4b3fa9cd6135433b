"""What the REST API takes and returns (these models are its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rubin_app.accounts.models import ApiKey
from rubin_app.models import Conversation, Message


class ConversationOut(BaseModel):
    """A conversation in a list."""

    id: str
    title: str
    model: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Conversation) -> ConversationOut:
        """From the table row."""
        return cls(id=row.id, title=row.title, model=row.model, created_at=row.created_at, updated_at=row.updated_at)


class MessageOut(BaseModel):
    """One message of a conversation."""

    id: int
    role: Literal["user", "assistant", "system"]
    content: str
    reasoning: str = ""
    model: str = ""
    status: Literal["complete", "streaming", "interrupted", "error"]
    error: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    created_at: datetime

    @classmethod
    def of(cls, row: Message) -> MessageOut:
        """From the table row."""
        assert row.id is not None
        return cls(
            id=row.id, role=row.role.value, content=row.content, reasoning=row.reasoning, model=row.model,
            status=row.status.value, error=row.error, prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens, created_at=row.created_at,
        )  # fmt: skip


class ConversationPage(BaseModel):
    """A page of conversations."""

    data: list[ConversationOut]
    offset: int
    limit: int
    has_more: bool


class ConversationDetail(ConversationOut):
    """A conversation with its messages (the newest `limit`, oldest first; `before` pages back)."""

    messages: list[MessageOut]
    has_older: bool


class NewConversation(BaseModel):
    """Create a conversation (empty, or with a first message to answer)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="", max_length=200)
    model: str = Field(default="", max_length=200, description="Empty: the instance's default model.")


class Rename(BaseModel):
    """Rename a conversation."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)


class NewMessage(BaseModel):
    """A user message to answer in a conversation."""

    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1)
    model: str = Field(default="", max_length=200, description="Empty: the conversation's model.")
    stream: bool = Field(default=True, description="Answer as a server-sent event stream (else one JSON reply).")


class Regenerate(BaseModel):
    """Answer the last question again."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="", max_length=200)
    stream: bool = True


class Exchange(BaseModel):
    """A finished exchange (non-streaming send): the question and the answer as saved."""

    conversation_id: str
    question: MessageOut | None
    answer: MessageOut


class KeyOut(BaseModel):
    """An API key as lists show it (never the key itself)."""

    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str
    requests_per_minute: int | None
    tokens_per_day: int | None
    owner_email: str | None = None

    @classmethod
    def of(cls, row: ApiKey, owner_email: str | None = None) -> KeyOut:
        """From the table row."""
        assert row.id is not None
        return cls(
            id=row.id, name=row.name, prefix=row.prefix, scopes=row.scopes.split(), created_at=row.created_at,
            expires_at=row.expires_at, revoked_at=row.revoked_at, last_used_at=row.last_used_at,
            last_used_ip=row.last_used_ip, requests_per_minute=row.requests_per_minute,
            tokens_per_day=row.tokens_per_day, owner_email=owner_email,
        )  # fmt: skip


class NewKey(BaseModel):
    """Create an API key."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(default_factory=list, description="Empty: chat, conversations:read/write.")
    expires_days: float | None = Field(default=None, gt=0)
    requests_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)


class KeyCreated(KeyOut):
    """A new key: `key` is shown this once."""

    key: str


class UsageRow(BaseModel):
    """Usage of one group (a day, a model, a key...)."""

    group: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached: int
    failed: int
    mean_ttft_ms: float | None


class UsageReport(BaseModel):
    """Usage over the last `days`, grouped `by`."""

    days: int
    by: str
    data: list[UsageRow]
