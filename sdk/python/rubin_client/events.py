"""The events of a streamed answer (`started`, `delta`..., `done`) and the server-sent-events decoder."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

AnswerStatus = Literal["complete", "interrupted", "error"]


def _id(value: Any) -> int | None:
    return int(value) if value is not None else None


@dataclass(frozen=True)
class Started:
    """The question was saved and the answer started: the ids to follow, stop or read them by."""

    conversation_id: str
    question_id: int | None
    answer_id: int | None


@dataclass(frozen=True)
class Delta:
    """A piece of the answer: its text (`content`) and/or its reasoning (models that think aloud)."""

    content: str = ""
    reasoning: str = ""


@dataclass(frozen=True)
class Done:
    """The answer ended: `status` `complete`, `interrupted` (stopped: `error` is `stopped`) or `error`
    (`error` is a short code such as `timeout`); the token counts when the model server gave them."""

    status: AnswerStatus
    error: str
    prompt_tokens: int | None
    completion_tokens: int | None
    conversation_id: str
    question_id: int | None
    answer_id: int | None

    @property
    def ok(self) -> bool:
        """The answer is complete."""
        return self.status == "complete"


StreamEvent: TypeAlias = Started | Delta | Done


def parse_event(name: str, data: Mapping[str, Any]) -> StreamEvent | None:
    """The typed event of one server-sent event; None for an event this client does not know."""
    if name == "started":
        return Started(str(data["conversation_id"]), _id(data.get("question_id")), _id(data.get("answer_id")))
    if name == "delta":
        return Delta(content=str(data.get("content") or ""), reasoning=str(data.get("reasoning") or ""))
    if name == "done":
        return Done(
            status=data["status"],
            error=str(data.get("error") or ""),
            prompt_tokens=_id(data.get("prompt_tokens")),
            completion_tokens=_id(data.get("completion_tokens")),
            conversation_id=str(data["conversation_id"]),
            question_id=_id(data.get("question_id")),
            answer_id=_id(data.get("answer_id")),
        )
    return None


class SSEDecoder:
    """Turns the lines of a `text/event-stream` into (event name, data) pairs, per the WHATWG rules that
    matter here: `event:` and `data:` fields (several `data:` lines join with newlines), `:` comments, and a
    blank line ending each event."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        """Take one line (without its line break); the event it completes, if any."""
        if not line:
            event, data = self._event or "message", self._data
            self._event, self._data = "", []
            return (event, "\n".join(data)) if data else None
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        return None

    def end(self) -> tuple[str, str] | None:
        """The stream ended: the last event if it lacked its blank line."""
        return self.feed("")


def decode(name: str, data: str) -> StreamEvent | None:
    """The typed event of a decoded server-sent event (None: unknown event or not a JSON object)."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError:
        return None
    return parse_event(name, payload) if isinstance(payload, dict) else None
