"""`/v1`: what the official OpenAI SDKs call, answered by Rubin with a Rubin key (`base_url=<rubin>/v1`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from rubin_app.accounts.api_keys import KeyPrincipal
from rubin_app.accounts.key_limits import admit_key, settle_key
from rubin_app.api.auth import client_ip
from rubin_app.api.deps import require
from rubin_app.api.errors import from_input_error, install_handlers
from rubin_app.api.openai import assistants, completions
from rubin_app.api.openai.request import parse_completion, read_json
from rubin_app.connections.router import ModelEntry
from rubin_app.core.errors import ApiError
from rubin_app.services.chats import InputError
from rubin_app.services.limits import LimitExceeded
from rubin_app.services.runtime import get_runtime

Chat = Annotated[KeyPrincipal, Depends(require("chat"))]
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


async def _body(request: Request) -> dict[str, Any]:
    limit = get_runtime().settings.api_max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError("body_too_large", f"the request body is over {limit} bytes")
    raw = b""
    async for piece in request.stream():
        raw += piece
        if len(raw) > limit:
            raise ApiError("body_too_large", f"the request body is over {limit} bytes")
    return read_json(raw, limit)


def _model(entry: ModelEntry) -> dict[str, Any]:
    """A model as OpenAI lists it, plus where it lives and what it can do (extra fields the SDKs keep)."""
    return {
        "id": entry.name, "object": "model", "created": 0, "owned_by": "rubin",
        "connection": entry.connection, "capabilities": list(entry.capabilities),
    }  # fmt: skip


def build_openai_app() -> FastAPI:
    """The /v1 app (mounted by rubin_app.api.routes)."""
    app = FastAPI(title="Rubin AI — OpenAI-compatible API", docs_url=None, redoc_url=None, openapi_url=None)
    install_handlers(app)

    @app.get("/models")
    async def list_models(key: Chat) -> JSONResponse:
        rt = get_runtime()
        permissions = await rt.permissions.get(key.user_id)
        entries = await rt.router.allowed_entries(permissions)
        if not entries and rt.router.error is not None:
            raise ApiError(rt.router.error.code, "the model list is unavailable")
        data = [_model(e) for e in entries]
        data += await assistants.model_entries(key.user_id, permissions)  # the user's assistants (asst:<slug>)
        return JSONResponse({"object": "list", "data": data})

    @app.get("/models/{model_id:path}")
    async def get_model(model_id: str, key: Chat) -> JSONResponse:
        rt = get_runtime()
        if assistants.names_assistant(model_id):
            return JSONResponse(
                await assistants.model_entry_of(key.user_id, model_id, await rt.permissions.get(key.user_id))
            )
        if not (await rt.permissions.get(key.user_id)).allows_model(model_id):
            raise from_input_error(InputError("model_not_allowed", model=model_id))
        entry = next((e for e in await rt.router.entries() if e.name == model_id), None)
        if entry is None:
            raise ApiError("unknown_model", f"The model '{model_id}' does not exist", param="model")
        return JSONResponse(_model(entry))

    @app.post("/chat/completions")
    async def chat_completions(request: Request, key: Chat) -> Response:
        rt = get_runtime()
        call = parse_completion(
            await _body(request), max_messages=rt.settings.api_max_messages,
            max_message_chars=rt.settings.max_message_chars,
        )  # fmt: skip
        asked = await assistants.resolve_request(call.request, key.user_id)  # an assistant: its prompt and parameters
        run = await completions.start_stateless(rt, key, asked, client_ip(request), stream=call.stream)
        if not call.stream:
            return JSONResponse(await completions.complete(run), headers={"Cache-Control": "no-store"})
        await run.wait_first_output()
        error = completions.failure_of(run)
        if error is not None and not run.text:
            raise error  # nothing streamed yet: a proper HTTP error (the SDKs raise its class)
        chunks = completions.stream_chunks(rt, run, include_usage=call.include_usage, cancel_on_disconnect=True)
        return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)

    @app.post("/embeddings")
    async def embeddings(request: Request, key: Chat) -> JSONResponse:
        rt = get_runtime()
        body = await _body(request)
        model, inputs = body.get("model"), body.get("input")
        if not isinstance(model, str) or not model:
            raise ApiError("invalid_request", "model: a model name is required", param="model")
        if not inputs or not isinstance(inputs, (str, list)):
            raise ApiError("invalid_request", "input: text or a list of texts is required", param="input")
        if not (await rt.permissions.get(key.user_id)).allows_model(model):
            raise from_input_error(InputError("model_not_allowed", model=model))
        limit = (await rt.admission.limits_for(key.user_id)).requests_per_minute
        try:
            ticket = await admit_key(rt.limiter, key, 1)  # the key's rate and quota (its tokens settled below)
            ok, wait = await rt.limiter.hit(f"user:{key.user_id}", limit)
            if not ok:
                raise LimitExceeded("rate_limit", limit, wait)
        except InputError as exc:
            raise from_input_error(exc) from None
        allowed = {"model", "input", "encoding_format", "dimensions", "user"}
        tokens = 0
        try:
            await rt.router.load()
            client, upstream = rt.router.client_for(model)  # the connection that serves it, its name there
            answer = await client.embeddings({k: v for k, v in body.items() if k in allowed} | {"model": upstream})
            if upstream != model:
                answer["model"] = model
            usage = answer.get("usage")
            tokens = int(usage.get("prompt_tokens") or 0) if isinstance(usage, dict) else 0
        finally:
            await settle_key(rt.limiter, ticket, tokens)
        return JSONResponse(answer)

    return app
