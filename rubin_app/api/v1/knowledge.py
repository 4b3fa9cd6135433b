"""/api/v1/knowledge: a user's knowledge bases and their documents, for programs.

Every call acts as the key's user: their own bases and the shared ones are readable, only their own are changed;
another user's private base or file is a 404 exactly as in the UI. Sharing a base with everyone takes an admin key
(and the owner's groups must allow knowledge sharing). Uploads are multipart (`files`, one or more); each file is
queued for the ingestion job and its status read back with GET /knowledge/files/{id}.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from rubin_app.accounts.api_keys import KeyPrincipal
from rubin_app.api.auth import client_ip
from rubin_app.api.deps import key_principal
from rubin_app.api.errors import message_for
from rubin_app.api.v1.knowledge_schemas import BaseOut, BaseUpdate, FileOut, NewBase, UploadRefusal, UploadResult
from rubin_app.core.errors import ApiError
from rubin_app.knowledge import service, uploads
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime

Key = Annotated[KeyPrincipal, Depends(key_principal)]
router = APIRouter(prefix="/knowledge", tags=["knowledge"])
MAX_FILES = 20  # per upload request
FORM_OVERHEAD = 1 << 20  # bytes of multipart framing allowed beyond the files themselves


def _error(exc: InputError) -> ApiError:
    return ApiError(exc.code, message_for(exc.code, exc.params))


async def _base_or_404(key: KeyPrincipal, kb_id: int) -> BaseOut:
    async with session_scope(read_only=True) as session:
        row = await service.get_base(session=session, user_id=key.user_id, kb_id=kb_id)
    if row is None:
        raise _error(InputError("kb_not_found"))
    return BaseOut.of(row, key.user_id)


@router.get("/bases", response_model=list[BaseOut])
async def list_bases(key: Key) -> list[BaseOut]:
    """The key's user's bases, then the shared ones."""
    async with session_scope(read_only=True) as session:
        rows = await service.list_bases(session=session, user_id=key.user_id)
    return [BaseOut.of(r, key.user_id) for r in rows]


@router.post("/bases", response_model=BaseOut, status_code=201)
async def create_base(body: NewBase, key: Key) -> BaseOut:
    """A new, private base."""
    try:
        async with session_scope() as session:
            row = await service.create_base(
                session=session, user_id=key.user_id, name=body.name, description=body.description
            )
    except InputError as exc:
        raise _error(exc) from None
    return BaseOut.of(row, key.user_id)


@router.get("/bases/{kb_id}", response_model=BaseOut)
async def get_base(kb_id: int, key: Key) -> BaseOut:
    """One base the key's user may read."""
    return await _base_or_404(key, kb_id)


@router.patch("/bases/{kb_id}", response_model=BaseOut)
async def update_base(kb_id: int, body: BaseUpdate, request: Request, key: Key) -> BaseOut:
    """Rename or describe one of the user's bases; `shared` (an admin key) publishes it to everyone or takes it back."""
    if body.shared is not None and not key.allows("admin"):
        raise ApiError("insufficient_scope", "sharing a knowledge base needs an admin key ('admin' scope)")
    try:
        async with session_scope() as session:
            row = None
            if body.name is not None or body.description is not None:
                row = await service.update_base(
                    session=session, user_id=key.user_id, kb_id=kb_id, name=body.name, description=body.description
                )
            if body.shared is not None:  # an admin may publish (or take back) a base that is not theirs
                row = await service.set_shared(
                    session=session, actor_id=key.user_id, kb_id=kb_id, shared=body.shared, ip=client_ip(request)
                )
            if row is None:
                row = await service.own_base(session=session, user_id=key.user_id, kb_id=kb_id)
            out = BaseOut.of(row, key.user_id)
    except InputError as exc:
        raise _error(exc) from None
    return out


@router.delete("/bases/{kb_id}", status_code=204)
async def delete_base(kb_id: int, key: Key) -> Response:
    """Delete one of the user's bases with all its files, passages and vectors."""
    rt = get_runtime()
    try:
        ids = await service.delete_base(scope=session_scope, index=rt.knowledge.parts.index, user_id=key.user_id,
                                        kb_id=kb_id)  # fmt: skip
    except InputError as exc:
        raise _error(exc) from None
    for file_id in ids:
        uploads.drop(rt.settings, file_id)
    return Response(status_code=204)


@router.get("/bases/{kb_id}/files", response_model=list[FileOut])
async def list_files(kb_id: int, key: Key) -> list[FileOut]:
    """The documents of a base the user may read, newest first, with their ingestion status."""
    try:
        async with session_scope(read_only=True) as session:
            rows = await service.list_files(session=session, user_id=key.user_id, kb_id=kb_id)
    except InputError as exc:
        raise _error(exc) from None
    return [FileOut.of(r) for r in rows]


MULTIPART = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    "required": ["files"],
                }
            }
        },
    }
}


@router.post("/bases/{kb_id}/files", response_model=UploadResult, status_code=202, openapi_extra=MULTIPART)
async def upload_files(kb_id: int, request: Request, key: Key) -> UploadResult:
    """Upload documents (multipart field `files`, up to 20); each is queued for ingestion or refused with a reason.

    When every file is refused, the answer is the first refusal's error (409 duplicate, 413 too large, …)."""
    rt = get_runtime()
    limit = uploads.max_bytes(rt.settings)
    if int(request.headers.get("content-length") or 0) > MAX_FILES * limit + FORM_OVERHEAD:
        raise _error(InputError("kb_file_too_large", limit_mb=rt.settings.knowledge_max_file_mb))
    await _base_or_404(key, kb_id)
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=20)
    except HTTPException as exc:  # a malformed body, or more parts than allowed
        code = "kb_too_many_files" if "files" in str(exc.detail).lower() else "invalid_request"
        text = message_for(code, {"max": MAX_FILES}) if code != "invalid_request" else str(exc.detail)
        raise ApiError(code, text) from None
    try:
        files = [f for name in ("files", "file") for f in form.getlist(name) if isinstance(f, UploadFile)]
        if not files:
            raise _error(InputError("kb_no_files"))
        accepted, refused, first = [], [], None
        for upload in files:
            name = upload.filename or "document"
            try:
                row = await uploads.enqueue(scope=session_scope, settings=rt.settings, user_id=key.user_id,
                                            kb_id=kb_id, filename=name, content=uploads.blocks(upload))  # fmt: skip
            except InputError as exc:
                first = first or exc
                refused.append(UploadRefusal(filename=name, code=exc.code, message=message_for(exc.code, exc.params)))
                continue
            accepted.append(FileOut.of(row))
    finally:
        await form.close()
    if not accepted and first is not None:
        raise _error(first)
    rt.knowledge.wake()
    return UploadResult(data=accepted, errors=refused)


@router.get("/files/{file_id}", response_model=FileOut)
async def get_file(file_id: int, key: Key) -> FileOut:
    """A document's ingestion status and progress."""
    async with session_scope(read_only=True) as session:
        row = await service.get_file(session=session, user_id=key.user_id, file_id=file_id)
    if row is None:
        raise _error(InputError("kb_file_not_found"))
    return FileOut.of(row)


@router.post("/files/{file_id}/cancel", response_model=FileOut)
async def cancel_file(file_id: int, key: Key) -> FileOut:
    """Stop a document's ingestion (what was indexed of it is removed)."""
    rt = get_runtime()
    try:
        row = await uploads.cancel(scope=session_scope, settings=rt.settings, user_id=key.user_id, file_id=file_id)
    except InputError as exc:
        raise _error(exc) from None
    return FileOut.of(row)


@router.delete("/files/{file_id}", status_code=204)
async def delete_file(file_id: int, key: Key) -> Response:
    """Delete a document with its passages and vectors."""
    rt = get_runtime()
    try:
        await service.delete_file(scope=session_scope, index=rt.knowledge.parts.index, user_id=key.user_id,
                                  file_id=file_id)  # fmt: skip
    except InputError as exc:
        raise _error(exc) from None
    uploads.drop(rt.settings, file_id)
    return Response(status_code=204)
