"""An OpenAI chat-completions body, read into Rubin's `ChatRequest` with OpenAI-shaped errors.

What the OpenAI SDKs send is accepted as they send it (unknown fields are ignored, as OpenAI-compatible servers
do); what Rubin cannot do is refused by name (`n` other than 1, `logprobs`...), never silently changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from rubin_app.core.errors import ApiError
from rubin_app.llm.types import ChatMessage, ChatRequest, Params, Tool

PARAMS = ("temperature", "top_p", "max_tokens", "stop", "seed", "response_format", "presence_penalty",
          "frequency_penalty")  # fmt: skip
UNSUPPORTED = {"n": 1, "logprobs": False, "top_logprobs": None, "logit_bias": None, "audio": None, "prediction": None}


@dataclass(frozen=True)
class CompletionCall:
    """A validated chat-completions call: the request and how to answer it."""

    request: ChatRequest
    stream: bool
    include_usage: bool


def read_json(raw: bytes, max_bytes: int) -> dict[str, Any]:
    """The JSON object of a request body (413 over `max_bytes`, 400 when it is not a JSON object)."""
    if len(raw) > max_bytes:
        raise ApiError("body_too_large", f"the request body is over {max_bytes} bytes")
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError("invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError("invalid_json", "the request body must be a JSON object")
    return body


def _param_of(error: ValidationError, prefix: str = "") -> tuple[str, str]:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"] if not str(part).startswith(("function-after", "union")))
    param = f"{prefix}{where}" if where else prefix.rstrip(".")
    return param, f"{param}: {first['msg']}" if param else str(first["msg"])


def parse_completion(body: dict[str, Any], *, max_messages: int, max_message_chars: int) -> CompletionCall:
    """Validate a chat-completions body (422 for a bad value, 413 for too much, 400 for what Rubin lacks)."""
    for name, allowed in UNSUPPORTED.items():
        if name in body and body[name] not in (allowed, None):
            raise ApiError("unsupported", f"{name}={body[name]!r} is not supported by this server", param=name)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ApiError("invalid_request", "model: a model name is required", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError("invalid_request", "messages: at least one message is required", param="messages")
    if len(messages) > max_messages:
        raise ApiError("body_too_large", f"messages: at most {max_messages} messages per request", param="messages")
    params = {k: body[k] for k in PARAMS if body.get(k) is not None}
    if body.get("max_completion_tokens") is not None and "max_tokens" not in params:
        params["max_tokens"] = body["max_completion_tokens"]
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError("invalid_request", "stream: must be true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError("invalid_request", "stream_options: must be an object", param="stream_options")
    try:
        parsed_messages = [ChatMessage.model_validate(m) for m in messages]
    except ValidationError as exc:
        index = next((i for i, m in enumerate(messages) if not _valid_message(m)), 0)
        param, message = _param_of(exc, f"messages.{index}.")
        raise ApiError("invalid_request", message, param=param) from None
    try:
        request = ChatRequest(
            model=model.strip(),
            messages=parsed_messages,
            params=Params.model_validate(params),
            tools=[Tool.model_validate(t) for t in body["tools"]] if body.get("tools") else None,
            tool_choice=body.get("tool_choice"),
        )
    except ValidationError as exc:
        param, message = _param_of(exc)
        raise ApiError("invalid_request", message, param=param.removeprefix("params.")) from None
    for index, message_ in enumerate(request.messages):
        if len(message_.text()) > max_message_chars:
            raise ApiError(
                "message_too_long", f"messages.{index}: longer than {max_message_chars} characters",
                param=f"messages.{index}.content",
            )  # fmt: skip
    return CompletionCall(request, stream, bool(options.get("include_usage")))


def _valid_message(message: object) -> bool:
    try:
        ChatMessage.model_validate(message)
    except ValidationError:
        return False
    return True
