"""The errors the client raises: one class per kind of failure, built from Rubin's OpenAI-shaped error body
`{"error": {"message", "type", "param", "code"}}` and its HTTP status (and `Retry-After` on 429/503)."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class RubinError(Exception):
    """Any failure of a call to Rubin.

    `status` is the HTTP status (None when no answer came), `code` Rubin's error code (e.g. `not_found`,
    `rate_limit_exceeded`, `insufficient_scope`), `type` the OpenAI error type, `param` the parameter at
    fault if any, `retry_after` the seconds the server asks to wait (429, 503) when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.type = type
        self.param = param
        self.retry_after = retry_after

    def __str__(self) -> str:
        head = " ".join(str(p) for p in (self.status, self.code) if p is not None)
        return f"{head}: {self.message}" if head else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class BadRequest(RubinError):
    """A 4xx other than 401/403/404/429: invalid input (400, 422), a conflict (409), a body too large (413)."""


class AuthenticationError(RubinError):
    """401: the API key is missing, unknown, revoked or expired."""


class PermissionDenied(RubinError):
    """403: the key lacks a scope the call needs, or the account waits for approval."""


class NotFound(RubinError):
    """404: no such conversation, key or model — or one that belongs to another user."""


class RateLimited(RubinError):
    """429: a rate limit or token quota; `retry_after` says how many seconds to wait (when known)."""


class ServerError(RubinError):
    """5xx: Rubin or its model server failed (502 upstream error, 503 overloaded, 504 timeout...)."""


class RubinConnectionError(RubinError):
    """No (complete) answer: the connection failed, timed out, or a stream ended before its `done` event."""


def error_class(status: int) -> type[RubinError]:
    """The class of the error answered with `status`."""
    if status >= 500:
        return ServerError
    return {401: AuthenticationError, 403: PermissionDenied, 404: NotFound, 429: RateLimited}.get(status, BadRequest)


def retry_after(value: str | None) -> float | None:
    """Seconds of a Retry-After header (a number of seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def from_response(response: httpx.Response) -> RubinError:
    """The error of a failed response (its body must have been read)."""
    status = response.status_code
    body: Any = None
    with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
        body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or response.reason_phrase)
        code, kind, param = error.get("code"), error.get("type"), error.get("param")
    else:  # not Rubin's answer (a proxy's error page...): its first characters
        message = response.text.strip()[:200] or response.reason_phrase or f"HTTP {status}"
        code = kind = param = None
    return error_class(status)(
        message,
        status=status,
        code=str(code) if code is not None else None,
        type=str(kind) if kind is not None else None,
        param=str(param) if param is not None else None,
        retry_after=retry_after(response.headers.get("retry-after")),
    )


def from_transport(exc: httpx.TransportError) -> RubinConnectionError:
    """A connection failure or timeout as the client's error."""
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_error"
    return RubinConnectionError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, code=kind)
