"""What the API returns, as typed, immutable dataclasses (mirroring rubin_app/api/v1/schemas.py).

Every class has `from_json(data)`: unknown fields are ignored, so a newer server does not break an older
client. Times are timezone-aware UTC datetimes (a time the server sends without an offset is UTC).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
Role = Literal["user", "assistant", "system"]
MessageStatus = Literal["complete", "streaming", "interrupted", "error"]
UsageGrouping = Literal["day", "model", "key", "source"]
AdminUsageGrouping = Literal["day", "model", "key", "source", "user"]


_FRACTION = re.compile(r"\.(\d+)")


def parse_time(value: str) -> datetime:
    """An ISO 8601 time from the server as an aware datetime (no offset: UTC)."""
    text = value.strip().replace("Z", "+00:00")
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)  # Python 3.10: 6 digits
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _time_or_none(value: Any) -> datetime | None:
    return parse_time(value) if value else None


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


@dataclass(frozen=True)
class Conversation:
    """A conversation as lists show it."""

    id: str
    title: str
    model: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Conversation:
        """From the API's JSON."""
        return cls(
            id=str(data["id"]),
            title=str(data["title"]),
            model=str(data["model"]),
            created_at=parse_time(data["created_at"]),
            updated_at=parse_time(data["updated_at"]),
        )


@dataclass(frozen=True)
class Message:
    """One message of a conversation (an answer also has its reasoning, model, status and token counts)."""

    id: int
    role: Role
    content: str
    status: MessageStatus
    created_at: datetime
    reasoning: str = ""
    model: str = ""
    error: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        """From the API's JSON."""
        return cls(
            id=int(data["id"]),
            role=data["role"],
            content=str(data["content"]),
            status=data["status"],
            created_at=parse_time(data["created_at"]),
            reasoning=str(data.get("reasoning") or ""),
            model=str(data.get("model") or ""),
            error=str(data.get("error") or ""),
            prompt_tokens=_int_or_none(data.get("prompt_tokens")),
            completion_tokens=_int_or_none(data.get("completion_tokens")),
        )


@dataclass(frozen=True)
class ConversationDetail(Conversation):
    """A conversation with a page of its messages: the newest `limit` (oldest first) before a message id.

    `has_older` says older messages exist: pass `before=detail.messages[0].id` to read them.
    """

    messages: tuple[Message, ...] = ()
    has_older: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConversationDetail:
        """From the API's JSON."""
        head = Conversation.from_json(data)
        return cls(
            id=head.id,
            title=head.title,
            model=head.model,
            created_at=head.created_at,
            updated_at=head.updated_at,
            messages=tuple(Message.from_json(m) for m in data.get("messages", ())),
            has_older=bool(data.get("has_older", False)),
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """A page of a list: `data`, where it starts, its size, and whether more follow (`next_offset`)."""

    data: list[T]
    offset: int
    limit: int
    has_more: bool

    @property
    def next_offset(self) -> int | None:
        """The offset of the next page, or None on the last one."""
        return self.offset + len(self.data) if self.has_more else None


def conversation_page(data: Mapping[str, Any]) -> Page[Conversation]:
    """A page of conversations from the API's JSON."""
    return Page(
        data=[Conversation.from_json(c) for c in data["data"]],
        offset=int(data["offset"]),
        limit=int(data["limit"]),
        has_more=bool(data["has_more"]),
    )


@dataclass(frozen=True)
class Exchange:
    """A finished exchange (a non-streaming send or regenerate): the question and the answer as saved.

    The answer's `status` is `complete`, `interrupted` (stopped) or `error` (its `error` says why).
    """

    conversation_id: str
    question: Message | None
    answer: Message

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Exchange:
        """From the API's JSON."""
        question = data.get("question")
        return cls(
            conversation_id=str(data["conversation_id"]),
            question=Message.from_json(question) if question else None,
            answer=Message.from_json(data["answer"]),
        )


@dataclass(frozen=True)
class ApiKey:
    """An API key as lists show it (never the key itself); `owner_email` only in the admin list."""

    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str
    requests_per_minute: int | None
    tokens_per_day: int | None
    owner_email: str | None = None

    @property
    def active(self) -> bool:
        """Neither revoked nor expired."""
        expired = self.expires_at is not None and self.expires_at <= datetime.now(timezone.utc)
        return self.revoked_at is None and not expired

    @classmethod
    def fields_of(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor arguments of a key's JSON."""
        return {
            "id": int(data["id"]),
            "name": str(data["name"]),
            "prefix": str(data["prefix"]),
            "scopes": tuple(str(s) for s in data.get("scopes", ())),
            "created_at": parse_time(data["created_at"]),
            "expires_at": _time_or_none(data.get("expires_at")),
            "revoked_at": _time_or_none(data.get("revoked_at")),
            "last_used_at": _time_or_none(data.get("last_used_at")),
            "last_used_ip": str(data.get("last_used_ip") or ""),
            "requests_per_minute": _int_or_none(data.get("requests_per_minute")),
            "tokens_per_day": _int_or_none(data.get("tokens_per_day")),
            "owner_email": data.get("owner_email"),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApiKey:
        """From the API's JSON."""
        return cls(**cls.fields_of(data))


@dataclass(frozen=True)
class CreatedKey(ApiKey):
    """A new key: `key` (`rk-...`) is shown this once; store it now."""

    key: str = ""

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"CreatedKey(id={self.id!r}, name={self.name!r}, prefix={self.prefix!r}, scopes={self.scopes!r})"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CreatedKey:
        """From the API's JSON."""
        return cls(**cls.fields_of(data), key=str(data["key"]))


@dataclass(frozen=True)
class UsageRow:
    """Usage of one group (a day, a model, a key id, a source or a user)."""

    group: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached: int
    failed: int
    mean_ttft_ms: float | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UsageRow:
        """From the API's JSON."""
        ttft = data.get("mean_ttft_ms")
        return cls(
            group=str(data["group"]) if data.get("group") is not None else None,
            requests=int(data["requests"]),
            prompt_tokens=int(data["prompt_tokens"]),
            completion_tokens=int(data["completion_tokens"]),
            total_tokens=int(data["total_tokens"]),
            cached=int(data["cached"]),
            failed=int(data["failed"]),
            mean_ttft_ms=float(ttft) if ttft is not None else None,
        )


@dataclass(frozen=True)
class UsageReport:
    """Usage over the last `days`, grouped `by`."""

    days: int
    by: str
    data: list[UsageRow]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UsageReport:
        """From the API's JSON."""
        return cls(days=int(data["days"]), by=str(data["by"]), data=[UsageRow.from_json(r) for r in data["data"]])
