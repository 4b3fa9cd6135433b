"""/api/v1/assistants: a user's assistants (and the shared ones) — list, create, read, change, delete, share
(admins), export to and import from the versioned JSON file. Reading needs the `chat` scope, changing
`conversations:write`. Another user's private assistant is a 404, whatever the call."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from rubin_app.accounts.api_keys import KeyPrincipal
from rubin_app.api.deps import require
from rubin_app.assistants import io
from rubin_app.assistants import service as assistants
from rubin_app.assistants.models import Assistant
from rubin_app.core.errors import ApiError
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope

Reader = Annotated[KeyPrincipal, Depends(require("chat"))]
Writer = Annotated[KeyPrincipal, Depends(require("conversations:write"))]
router = APIRouter(tags=["assistants"])
MAX_BODY = io.MAX_FILE_BYTES


class AssistantOut(BaseModel):
    """An assistant as the API shows it; `model` is what to pass as `model` to /v1/chat/completions."""

    id: int
    model: str
    owned: bool
    shared: bool
    name: str
    description: str
    emoji: str
    base_model: str
    system_prompt: str
    temperature: float | None
    max_tokens: int | None
    context_budget: int | None
    starters: list[str]
    knowledge_ids: list[int]

    @classmethod
    def of(cls, a: Assistant, user_id: int) -> AssistantOut:
        """The view of `a` for `user_id`."""
        spec = assistants.spec_from(a)
        return cls(id=a.id or 0, model=a.model_name, owned=a.owner_id == user_id, shared=a.shared,
                   knowledge_ids=spec.knowledge_ids, **spec.model_dump())  # fmt: skip


class Shared(BaseModel):
    """The share switch."""

    shared: bool


async def _json(request: Request) -> bytes:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError("body_too_large", f"the request body is over {MAX_BODY} bytes")
    return raw


async def _spec(request: Request) -> io.AssistantSpec:
    try:
        body = json.loads(await _json(request))
    except ValueError:
        raise ApiError("invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError("invalid_json", "the request body must be a JSON object")
    return io.spec_of(body)


@router.get("/assistants", response_model=list[AssistantOut])
async def list_assistants(key: Reader) -> list[AssistantOut]:
    """The assistants the user may use: their own and the shared ones, by name."""
    async with session_scope(read_only=True) as session:
        rows = await assistants.list_assistants(session=session, user_id=key.user_id)
    return [AssistantOut.of(a, key.user_id) for a in rows]


@router.post("/assistants", response_model=AssistantOut, status_code=201)
async def create_assistant(request: Request, key: Writer) -> AssistantOut:
    """A new private assistant (body: name, base_model, and optionally the other fields)."""
    spec = await _spec(request)
    async with session_scope() as session:
        made = await assistants.create_assistant(session=session, user_id=key.user_id, spec=spec)
    return AssistantOut.of(made, key.user_id)


@router.get("/assistants/export")
async def export_assistants(key: Reader, ids: Annotated[list[int] | None, Query()] = None) -> Response:
    """The versioned JSON file of the user's own assistants (or of the usable ones named by `ids`)."""
    async with session_scope(read_only=True) as session:
        rows = await assistants.list_assistants(session=session, user_id=key.user_id)
    chosen = [a for a in rows if (a.id in ids if ids else a.owner_id == key.user_id)]
    if ids and len(chosen) != len(set(ids)):
        raise InputError("assistant_not_found")
    headers = {"Content-Disposition": 'attachment; filename="rubin-assistants.json"', "Cache-Control": "no-store"}
    return Response(io.dumps([assistants.spec_from(a) for a in chosen]), media_type="application/json",
                    headers=headers)  # fmt: skip


@router.post("/assistants/import", response_model=list[AssistantOut], status_code=201)
async def import_assistants(request: Request, key: Writer) -> list[AssistantOut]:
    """Create private assistants from an exported file (all of them, or none with the reason)."""
    specs = io.parse_document(await _json(request))
    async with session_scope() as session:
        made = await assistants.import_assistants(session=session, user_id=key.user_id, specs=specs)
    return [AssistantOut.of(a, key.user_id) for a in made]


@router.get("/assistants/{assistant_id}", response_model=AssistantOut)
async def get_assistant(assistant_id: int, key: Reader) -> AssistantOut:
    """One assistant the user may use."""
    async with session_scope(read_only=True) as session:
        found = await assistants.get_assistant(session=session, user_id=key.user_id, assistant_id=assistant_id)
    if found is None:
        raise InputError("assistant_not_found")
    return AssistantOut.of(found, key.user_id)


@router.put("/assistants/{assistant_id}", response_model=AssistantOut)
async def update_assistant(assistant_id: int, request: Request, key: Writer) -> AssistantOut:
    """Replace one of the user's own assistants' fields (its `model` name stays)."""
    spec = await _spec(request)
    async with session_scope() as session:
        changed = await assistants.update_assistant(
            session=session, user_id=key.user_id, assistant_id=assistant_id, spec=spec
        )
    return AssistantOut.of(changed, key.user_id)


@router.put("/assistants/{assistant_id}/shared", response_model=AssistantOut)
async def share_assistant(assistant_id: int, body: Shared, key: Writer) -> AssistantOut:
    """Share one's own assistant with everyone, or stop (admins)."""
    async with session_scope() as session:
        changed = await assistants.set_shared(
            session=session, user_id=key.user_id, assistant_id=assistant_id, shared=body.shared
        )
    return AssistantOut.of(changed, key.user_id)


@router.delete("/assistants/{assistant_id}", status_code=204)
async def delete_assistant(assistant_id: int, key: Writer) -> Response:
    """Delete one of the user's own assistants."""
    async with session_scope() as session:
        await assistants.delete_assistant(session=session, user_id=key.user_id, assistant_id=assistant_id)
    return Response(status_code=204)
