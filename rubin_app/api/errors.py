"""Errors of Rubin's HTTP APIs, answered in one shape: OpenAI's `{"error": {message, type, param, code}}`.

The status and type come from rubin_app.core.errors (one table for the UI and every API); the message is
the UI's English text for the code where there is one, so a developer reads what a user would.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from rubin_app import i18n
from rubin_app.core.errors import ApiError, i18n_key, openai_error
from rubin_app.llm.client import LLMError
from rubin_app.services.chats import InputError
from rubin_app.services.limits import LimitExceeded
from rubin_app.webhooks.errors import WebhookError

log = logging.getLogger(__name__)

API_MESSAGES = {
    "missing_api_key": "No API key: send it as 'Authorization: Bearer rk-...'.",
    "invalid_api_key": "The API key is not valid (unknown or revoked).",
    "expired_api_key": "The API key has expired.",
    "insufficient_scope": "The API key lacks the scope this call needs.",
    "account_pending": "The account waits for an administrator's approval.",
    "not_found_route": "Unknown route.",
}


def message_for(code: str, params: dict[str, Any] | None = None) -> str:
    """The English message of a code (the UI's text when it has one)."""
    params = params or {}
    template = i18n.EN.get(i18n_key(code)) or API_MESSAGES.get(code) or code.replace("_", " ")
    try:
        return template.format(**params)
    except (KeyError, IndexError):
        return template


def from_input_error(exc: InputError) -> ApiError:
    """An InputError (or LimitExceeded) as the API's error."""
    retry = exc.retry_after if isinstance(exc, LimitExceeded) else None
    return ApiError(exc.code, message_for(exc.code, exc.params), retry_after=retry)


def from_llm_error(exc: LLMError) -> ApiError:
    """A model-server failure as the API's error (its detail names the upstream's own message)."""
    text = message_for(exc.code)
    return ApiError(exc.code, f"{text} ({exc.detail})" if exc.detail else text, retry_after=exc.retry_after)


def respond(error: ApiError) -> JSONResponse:
    """The HTTP response of an ApiError (with Retry-After on 429/503 when known)."""
    headers = {"Cache-Control": "no-store"}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(error.retry_after + 0.999)))
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    """Every error of `app` answered in the OpenAI shape."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return respond(exc)

    async def input_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InputError)
        return respond(from_input_error(exc))

    async def llm_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LLMError)
        return respond(from_llm_error(exc))

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "path"))
        text = str(first["msg"])
        return respond(ApiError("invalid_request", f"{param}: {text}" if param else text, param=param))

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found_route", 405: "unsupported", 413: "body_too_large"}.get(
            exc.status_code, "invalid_request"
        )
        body = openai_error(code, str(exc.detail) if exc.status_code != 404 else message_for(code))
        return JSONResponse(body, status_code=exc.status_code)

    async def webhook_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, WebhookError)
        return respond(ApiError(exc.code, exc.message))

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("API request failed: %s", type(exc).__name__, exc_info=exc)
        return respond(ApiError("internal", message_for("internal")))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(WebhookError, webhook_error)
    app.add_exception_handler(InputError, input_error)
    app.add_exception_handler(LLMError, llm_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
