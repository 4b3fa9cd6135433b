"""A chat request and the events of its stream, typed once for every caller (the chat UI, the API, tools).

`ChatRequest` is also what the OpenAI-compatible API validates a request body into, so the rules for
messages, parts and parameters live in one place. Its `canonical()` form is what the response cache hashes:
every part, tool and parameter, never a subset.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CACHE_KEY_VERSION = 2  # bumped when the canonical form changes (old cache entries then simply miss)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # what OpenAI SDKs add (refusal, annotations...)


class TextPart(_Strict):
    """A piece of text in a message."""

    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    """An image by URL or `data:` URI."""

    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    """An image in a user message."""

    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class FunctionCall(_Strict):
    """What a model asked to call: a function name and its JSON arguments (as text)."""

    name: str
    arguments: str = ""


class ToolCall(_Strict):
    """One tool call of an assistant message."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Strict):
    """One message: text or parts; an assistant's tool calls; a tool's result."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text (the text parts joined); images count as nothing."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


class FunctionDef(_Strict):
    """A function the model may call."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    """A tool definition (functions only, as in the OpenAI API)."""

    type: Literal["function"] = "function"
    function: FunctionDef


class Params(_Strict):
    """Sampling parameters; None: the server's default (and left out of the request)."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = Field(default=None, max_length=4)
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class ChatRequest(_Strict):
    """What is asked of a model: messages, parameters, tools."""

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1)
    params: Params = Params()
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None

    @classmethod
    def of_turns(cls, model: str, turns: list[dict[str, str]], params: Params | None = None) -> ChatRequest:
        """A text-only request from {"role", "content"} pairs (the chat UI's context)."""
        messages = [ChatMessage.model_construct(role=t["role"], content=t["content"]) for t in turns]
        return cls.model_construct(model=model, messages=messages, params=params or Params(), tools=None,
                                   tool_choice=None)  # fmt: skip

    def continued(self, partial: str) -> ChatRequest:
        """The same request with the partial answer as the assistant's prefix (the model goes on from it), and
        max_tokens lowered by what it holds (about four characters a token)."""
        asked = self.messages[:-1] if self.messages[-1].role == "assistant" else self.messages  # already a prefix
        messages = [*asked, ChatMessage.model_construct(role="assistant", content=partial)]
        params = self.params
        if params.max_tokens is not None:
            params = params.model_copy(update={"max_tokens": max(1, params.max_tokens - len(partial) // 4)})
        return self.model_copy(update={"messages": messages, "params": params})

    def with_params(self, **changes: Any) -> ChatRequest:
        """The same request with some parameters changed (a quota's lower max_tokens)."""
        return self.model_copy(update={"params": self.params.model_copy(update=changes)})

    def body(self, *, stream: bool) -> dict[str, Any]:
        """The OpenAI-compatible JSON body to send upstream."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump(exclude_none=True) for m in self.messages],
            "stream": stream,
            **self.params.model_dump(exclude_none=True),
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if self.tools:
            body["tools"] = [t.model_dump(exclude_none=True) for t in self.tools]
        if self.tool_choice is not None:
            body["tool_choice"] = self.tool_choice
        return body

    def canonical(self) -> str:
        """The whole request as canonical JSON (sorted keys, no defaults): what identifies it."""
        return json.dumps(self.body(stream=False), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def cache_key(self, scope: str = "") -> str:
        """SHA-256 of the canonical request within a scope ("user:<id>", or "" when shared)."""
        raw = f"{CACHE_KEY_VERSION}\0{scope}\0{self.canonical()}"
        return hashlib.sha256(raw.encode()).hexdigest()

    def prompt_text(self) -> list[str]:
        """Every message's text (for token estimates)."""
        return [m.text() for m in self.messages]


# --------------------------------------------------------------------------- stream events


@dataclass(frozen=True, slots=True)
class Delta:
    """New answer text."""

    text: str
    kind: Literal["delta"] = field(default="delta", init=False)


@dataclass(frozen=True, slots=True)
class Reasoning:
    """New reasoning ("thinking") text."""

    text: str
    kind: Literal["reasoning"] = field(default="reasoning", init=False)


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call: the first piece of an `index` names it, later ones add argument text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    kind: Literal["tool_call"] = field(default="tool_call", init=False)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the server reports them."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    kind: Literal["usage"] = field(default="usage", init=False)


@dataclass(frozen=True, slots=True)
class Done:
    """The answer is finished (`finish_reason`: stop, length, tool_calls...)."""

    finish_reason: str = "stop"
    kind: Literal["done"] = field(default="done", init=False)


@dataclass(frozen=True, slots=True)
class Failed:
    """The answer failed (an error code of rubin_app.core.errors); the last event of a failed run."""

    code: str
    detail: str = ""
    kind: Literal["error"] = field(default="error", init=False)


StreamEvent = Delta | Reasoning | ToolCallDelta | Usage | Done | Failed
