"""Every error code Rubin shows, mapped in one place to an HTTP status, an OpenAI-shaped error body and the
i18n key the UI translates (`err_<code>`).

The codes are those the services raise (`InputError.code`, `LimitExceeded.code`, `LLMError.code`) and those
the API adds (keys, scopes, request size). A code missing here answers 400 `invalid_request_error`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """How one code is answered over HTTP."""

    status: int
    type: str  # OpenAI's error "type"
    openai_code: str | None = None  # OpenAI's error "code" when it has a well-known one


_INVALID = ErrorKind(400, "invalid_request_error")
_UPSTREAM = ErrorKind(502, "api_error", "upstream_error")

ERRORS: dict[str, ErrorKind] = {
    # The model server (rubin_app.llm.client.LLMError codes).
    "unreachable": ErrorKind(502, "api_error", "upstream_unreachable"),
    "timeout": ErrorKind(504, "api_error", "upstream_timeout"),
    "overloaded": ErrorKind(503, "api_error", "upstream_overloaded"),
    "auth": _UPSTREAM,  # LocalAI refused Rubin's own key: the operator's problem, not the caller's
    "not_found": ErrorKind(404, "invalid_request_error", "model_not_found"),
    "bad_request": _INVALID,
    "server": _UPSTREAM,
    "upstream": _UPSTREAM,
    "dropped": _UPSTREAM,
    "malformed": _UPSTREAM,
    "internal": ErrorKind(500, "api_error", "internal_error"),
    "save_failed": ErrorKind(500, "api_error", "internal_error"),
    # Input (chats.InputError).
    "empty_message": _INVALID,
    "message_too_long": ErrorKind(413, "invalid_request_error", "context_length_exceeded"),
    "bad_characters": _INVALID,
    "unknown_model": ErrorKind(404, "invalid_request_error", "model_not_found"),
    "no_model": ErrorKind(503, "api_error", "no_model"),
    "conversation_not_found": ErrorKind(404, "invalid_request_error", "not_found"),
    "nothing_to_regenerate": _INVALID,
    "only_last_editable": _INVALID,
    "empty_title": _INVALID,
    "busy": ErrorKind(409, "invalid_request_error", "conflict"),
    # Limits (limits.LimitExceeded): 429 with Retry-After.
    "rate_limit": ErrorKind(429, "rate_limit_error", "rate_limit_exceeded"),
    "ip_rate_limit": ErrorKind(429, "rate_limit_error", "rate_limit_exceeded"),
    "key_rate_limit": ErrorKind(429, "rate_limit_error", "rate_limit_exceeded"),
    "concurrency": ErrorKind(429, "rate_limit_error", "rate_limit_exceeded"),
    "token_quota": ErrorKind(429, "insufficient_quota", "insufficient_quota"),
    "key_token_quota": ErrorKind(429, "insufficient_quota", "insufficient_quota"),
    "quota_short": ErrorKind(429, "insufficient_quota", "insufficient_quota"),
    # The API's own.
    "missing_api_key": ErrorKind(401, "invalid_request_error", "missing_api_key"),
    "invalid_api_key": ErrorKind(401, "invalid_request_error", "invalid_api_key"),
    "expired_api_key": ErrorKind(401, "invalid_request_error", "invalid_api_key"),
    "insufficient_scope": ErrorKind(403, "permission_error", "insufficient_scope"),
    "admin_only": ErrorKind(403, "permission_error", "forbidden"),
    "account_pending": ErrorKind(403, "permission_error", "account_pending"),
    "not_found_route": ErrorKind(404, "invalid_request_error", "not_found"),
    "key_not_found": ErrorKind(404, "invalid_request_error", "not_found"),
    "account_not_found": ErrorKind(404, "invalid_request_error", "not_found"),
    "bad_scope": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "bad_expiry": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "bad_limit": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "too_many_keys": ErrorKind(409, "invalid_request_error", "conflict"),
    # Privacy: retention and sessions (services/retention.py, services/sessions.py).
    "bad_retention": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "session_not_found": ErrorKind(404, "invalid_request_error", "not_found"),
    # Two-factor sign-in (rubin_app.accounts.twofactor): shown by the sign-in and account pages.
    "wrong_code": ErrorKind(401, "invalid_request_error", "invalid_code"),
    "code_used": ErrorKind(401, "invalid_request_error", "invalid_code"),
    "recovery_code_used": ErrorKind(401, "invalid_request_error", "invalid_code"),
    "code_expired": ErrorKind(401, "invalid_request_error", "invalid_code"),
    "two_factor_already_on": ErrorKind(409, "invalid_request_error", "conflict"),
    "two_factor_off": ErrorKind(409, "invalid_request_error", "conflict"),
    "two_factor_not_started": ErrorKind(409, "invalid_request_error", "conflict"),
    "two_factor_unreadable": ErrorKind(500, "api_error", "internal_error"),
    "two_factor_self_first": ErrorKind(409, "invalid_request_error", "conflict"),
    "passkey_failed": ErrorKind(401, "invalid_request_error", "invalid_code"),
    "no_passkey": ErrorKind(409, "invalid_request_error", "conflict"),
    "passkey_not_found": ErrorKind(404, "invalid_request_error", "not_found"),
    "too_many_passkeys": ErrorKind(409, "invalid_request_error", "conflict"),
    # Webhooks (rubin_app.webhooks.errors).
    "webhook_error": _INVALID,
    "webhook_not_found": ErrorKind(404, "invalid_request_error", "not_found"),
    "webhook_delivery_not_found": ErrorKind(404, "invalid_request_error", "not_found"),
    "webhook_invalid": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "webhook_forbidden": ErrorKind(403, "permission_error", "forbidden"),
    "webhook_disabled": ErrorKind(409, "invalid_request_error", "conflict"),
    "webhook_too_many": ErrorKind(409, "invalid_request_error", "conflict"),
    # Groups and permissions (rubin_app.accounts.groups, accounts.reauth).
    "model_not_allowed": ErrorKind(403, "permission_error", "model_not_allowed"),
    "api_keys_not_allowed": ErrorKind(403, "permission_error", "api_keys_not_allowed"),
    "webhooks_not_allowed": ErrorKind(403, "permission_error", "webhooks_not_allowed"),
    "reauth_required": ErrorKind(403, "permission_error", "reauthentication_required"),
    "group_not_found": ErrorKind(404, "invalid_request_error", "not_found"),
    "group_name_taken": ErrorKind(409, "invalid_request_error", "conflict"),
    "too_many_groups": ErrorKind(409, "invalid_request_error", "conflict"),
    "bad_group_name": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "bad_group_models": ErrorKind(422, "invalid_request_error", "invalid_value"),
    # Knowledge bases (rubin_app.knowledge.service, .uploads).
    "kb_not_found": ErrorKind(404, "invalid_request_error", "not_found"),
    "kb_file_not_found": ErrorKind(404, "invalid_request_error", "not_found"),
    "kb_not_owner": ErrorKind(403, "permission_error", "forbidden"),
    "kb_bad_name": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "kb_too_many": ErrorKind(409, "invalid_request_error", "conflict"),
    "kb_duplicate_file": ErrorKind(409, "invalid_request_error", "duplicate_file"),
    "kb_file_too_large": ErrorKind(413, "invalid_request_error", "file_too_large"),
    "kb_no_files": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "kb_too_many_files": ErrorKind(413, "invalid_request_error", "request_too_large"),
    "knowledge_sharing_not_allowed": ErrorKind(403, "permission_error", "knowledge_sharing_not_allowed"),
    # Assistants and personalisation (rubin_app.assistants, rubin_app.memory).
    "assistant_not_found": ErrorKind(404, "invalid_request_error", "not_found"),
    "bad_assistant": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "bad_assistant_file": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "too_many_assistants": ErrorKind(409, "invalid_request_error", "conflict"),
    "assistant_busy": ErrorKind(409, "invalid_request_error", "conflict"),
    "memory_not_found": ErrorKind(404, "invalid_request_error", "not_found"),
    "empty_memory": _INVALID,
    "memory_too_long": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "memory_exists": ErrorKind(409, "invalid_request_error", "conflict"),
    "too_many_memories": ErrorKind(409, "invalid_request_error", "conflict"),
    "instructions_too_long": ErrorKind(422, "invalid_request_error", "invalid_value"),
    # Model connections (rubin_app.connections.service).
    "connection_not_found": ErrorKind(404, "invalid_request_error", "not_found"),
    "connection_name_taken": ErrorKind(409, "invalid_request_error", "conflict"),
    "too_many_connections": ErrorKind(409, "invalid_request_error", "conflict"),
    "bad_connection_name": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "bad_connection_prefix": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "bad_connection_url": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "bad_connection_key": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "body_too_large": ErrorKind(413, "invalid_request_error", "request_too_large"),
    "invalid_request": ErrorKind(422, "invalid_request_error", "invalid_value"),
    "invalid_json": ErrorKind(400, "invalid_request_error", "invalid_json"),
    "unsupported": ErrorKind(400, "invalid_request_error", "unsupported_value"),
}


def kind_of(code: str) -> ErrorKind:
    """How `code` is answered (unknown codes: 400 invalid_request_error)."""
    return ERRORS.get(code, _INVALID)


def http_status(code: str) -> int:
    """The HTTP status of an error code."""
    return kind_of(code).status


def i18n_key(code: str) -> str:
    """The message key the UI translates for `code`."""
    return f"err_{code}"


def openai_error(code: str, message: str, *, param: str | None = None) -> dict[str, Any]:
    """An OpenAI-shaped error body: {"error": {"message", "type", "param", "code"}}."""
    kind = kind_of(code)
    return {"error": {"message": message, "type": kind.type, "param": param, "code": kind.openai_code or code}}


class ApiError(Exception):
    """An error an HTTP route answers with its code's status and an OpenAI-shaped body."""

    def __init__(
        self, code: str, message: str = "", *, param: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code.replace("_", " ")
        self.param = param
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        """The HTTP status."""
        return http_status(self.code)

    def body(self) -> dict[str, Any]:
        """The OpenAI-shaped body."""
        return openai_error(self.code, self.message, param=self.param)
