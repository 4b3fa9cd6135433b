"""Assistants in the /v1 API: `model` may name one ("asst:<slug>"), and /v1/models lists those the key's user
may use. The assistant's system prompt and parameters are applied; its base model answers (and is checked
against the user's permissions like any model). Custom instructions and memories are not added: API calls are
stateless programs' calls."""

from __future__ import annotations

from typing import Any

from rubin_app.accounts.permissions import Permissions
from rubin_app.assistants.apply import apply_to_request
from rubin_app.assistants.models import PREFIX, Assistant
from rubin_app.assistants.service import list_assistants, resolve_assistant
from rubin_app.core.errors import ApiError
from rubin_app.llm.types import ChatRequest
from rubin_app.services.db import session_scope


def names_assistant(model: str) -> bool:
    """Whether a model name is an assistant's ("asst:<slug>")."""
    return model.startswith(PREFIX)


async def _resolve(user_id: int, name: str) -> Assistant:
    async with session_scope(read_only=True) as session:
        assistant = await resolve_assistant(session=session, user_id=user_id, name=name)
    if assistant is None:
        raise ApiError("unknown_model", f"The model '{name}' does not exist", param="model")
    return assistant


async def resolve_request(request: ChatRequest, user_id: int) -> ChatRequest:
    """The request as the assistant's base model gets it when `model` names an assistant; else unchanged."""
    if not names_assistant(request.model):
        return request
    return apply_to_request(request, await _resolve(user_id, request.model))


def model_entry(assistant: Assistant) -> dict[str, Any]:
    """An assistant as a /v1/models entry (with Rubin's own fields for what it is)."""
    return {
        "id": assistant.model_name, "object": "model", "created": int(assistant.created_at.timestamp()),
        "owned_by": "rubin", "name": assistant.name, "description": assistant.description,
        "base_model": assistant.base_model,
    }  # fmt: skip


async def model_entries(user_id: int, permissions: Permissions) -> list[dict[str, Any]]:
    """The assistants the user may use (their base model allowed to them), as /v1/models entries."""
    async with session_scope(read_only=True) as session:
        usable = await list_assistants(session=session, user_id=user_id)
    return [model_entry(a) for a in usable if permissions.allows_model(a.base_model)]


async def model_entry_of(user_id: int, name: str, permissions: Permissions) -> dict[str, Any]:
    """GET /v1/models/asst:<slug> (404 when the user may not use it)."""
    assistant = await _resolve(user_id, name)
    if not permissions.allows_model(assistant.base_model):
        raise ApiError("unknown_model", f"The model '{name}' does not exist", param="model")
    return model_entry(assistant)
