"""/api/v1/conversations: what the chat UI does, for programs. Every query is filtered by the key's user: another
user's conversation id is a 404 here exactly as in the UI.

Sending runs the same pipeline as the UI (`chat_flow.send_message`): the answer is saved as it streams, a
client that leaves does not stop it, and a tab with the chat open finds it live.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.responses import JSONResponse, StreamingResponse

from rubin_app.accounts.api_keys import KeyPrincipal
from rubin_app.accounts.key_limits import admit_key, settle_key
from rubin_app.api.auth import client_ip
from rubin_app.api.deps import require
from rubin_app.api.errors import from_input_error, message_for
from rubin_app.api.v1.schemas import (
    ConversationDetail,
    ConversationOut,
    ConversationPage,
    Exchange,
    MessageOut,
    NewConversation,
    NewMessage,
    Regenerate,
    Rename,
)  # fmt: skip
from rubin_app.core.errors import ApiError
from rubin_app.generation.run import Run
from rubin_app.generation.sinks import AfterRun
from rubin_app.models import MessageStatus
from rubin_app.services import chat_flow, chats
from rubin_app.services.chat_flow import Started
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime

Read = Annotated[KeyPrincipal, Depends(require("conversations:read"))]
Write = Annotated[KeyPrincipal, Depends(require("conversations:write"))]
Chat = Annotated[KeyPrincipal, Depends(require("chat"))]
router = APIRouter(prefix="/conversations", tags=["conversations"])
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def _not_found() -> ApiError:
    return ApiError("conversation_not_found", message_for("conversation_not_found"))


async def _key_limits(key: KeyPrincipal) -> tuple[str | None, AfterRun]:
    """Count the request against the key's own limits (429 when over): the ticket of its token reservation
    and the sink that settles it when the answer ends (settling twice is harmless: the second finds nothing)."""
    rt = get_runtime()
    try:
        ticket = await admit_key(rt.limiter, key, rt.admission.reservation)
    except InputError as exc:
        raise from_input_error(exc) from None

    async def settle(run: Run) -> None:
        await settle_key(rt.limiter, ticket, run.quota_tokens)

    return ticket, AfterRun(settle)


@router.get("", response_model=ConversationPage)
async def list_conversations(
    key: Read, q: str = "", offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> ConversationPage:
    """The key's user's conversations, newest first; `q` filters by title."""
    async with session_scope(read_only=True) as session:
        rows = await chats.list_conversations(session=session, user_id=key.user_id, query=q, offset=offset,
                                              limit=limit + 1)  # fmt: skip
    return ConversationPage(
        data=[ConversationOut.of(r) for r in rows[:limit]], offset=offset, limit=limit, has_more=len(rows) > limit
    )


@router.post("", response_model=ConversationOut, status_code=201)
async def create_conversation(body: NewConversation, key: Write) -> ConversationOut:
    """An empty conversation (send its first message next)."""
    rt = get_runtime()
    model = await chat_flow.check_model(rt, body.model, user_id=key.user_id)
    async with session_scope() as session:
        row = await chats.create_conversation(session=session, user_id=key.user_id, model=model, title=body.title)
    return ConversationOut.of(row)


@router.get("/{conversation_id}", response_model=ConversationDetail)
async def read_conversation(
    conversation_id: str, key: Read, before: int | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> ConversationDetail:
    """A conversation with its newest `limit` messages (oldest first); `before` (a message id) pages back."""
    async with session_scope(read_only=True) as session:
        row = await chats.get_conversation(session=session, user_id=key.user_id, conversation_id=conversation_id)
        if row is None:
            raise _not_found()
        messages = await chats.list_messages(
            session=session, user_id=key.user_id, conversation_id=conversation_id, before_id=before, limit=limit + 1
        )
    older = len(messages) > limit
    shown = list(messages)[1:] if older else list(messages)
    return ConversationDetail(
        **ConversationOut.of(row).model_dump(), messages=[MessageOut.of(m) for m in shown], has_older=older
    )


@router.patch("/{conversation_id}", response_model=ConversationOut)
async def rename_conversation(conversation_id: str, body: Rename, key: Write) -> ConversationOut:
    """Rename (an automatic title never overwrites it afterwards)."""
    async with session_scope() as session:
        row = await chats.update_conversation(
            session=session, user_id=key.user_id, conversation_id=conversation_id, title=body.title
        )
    if row is None:
        raise _not_found()
    return ConversationOut.of(row)


@router.delete("/{conversation_id}", status_code=204)
async def delete_conversation(conversation_id: str, key: Write) -> Response:
    """Delete a conversation and its messages (its running answer is stopped first)."""
    rt = get_runtime()
    async with session_scope(read_only=True) as session:
        messages = await chats.list_messages(
            session=session, user_id=key.user_id, conversation_id=conversation_id, limit=5
        )
    for message in messages:
        if message.status == MessageStatus.streaming and message.id is not None:
            await rt.stop_answer(user_id=key.user_id, message_id=message.id)
    async with session_scope() as session:
        if not await chats.delete_conversation(session=session, user_id=key.user_id, conversation_id=conversation_id):
            raise _not_found()
    return Response(status_code=204)


@router.post("/{conversation_id}/messages", responses={200: {"content": {"text/event-stream": {}}}})
async def send_message(conversation_id: str, body: NewMessage, request: Request, key: Chat) -> Response:
    """Ask in a conversation ("new": start one). Streams `started`, `delta`... and `done` events, or with
    `stream: false` answers the finished exchange."""
    if not key.allows("conversations:write"):
        raise ApiError("insufficient_scope", "sending also needs the 'conversations:write' scope")
    rt = get_runtime()
    ticket, settle = await _key_limits(key)
    try:
        started = await chat_flow.send_message(
            rt, user_id=key.user_id, conversation_id=None if conversation_id == "new" else conversation_id,
            text=body.content, model=body.model, ip=client_ip(request), source="rest", api_key_id=key.key_id,
            extra_sinks=[settle], key_ticket=ticket,
        )  # fmt: skip
    except BaseException:
        await settle_key(get_runtime().limiter, ticket, 0)
        raise
    return await _answer(started, body.stream)


@router.post("/{conversation_id}/regenerate", responses={200: {"content": {"text/event-stream": {}}}})
async def regenerate(conversation_id: str, body: Regenerate, request: Request, key: Chat) -> Response:
    """Answer the last question again (the previous answer is replaced)."""
    if not key.allows("conversations:write"):
        raise ApiError("insufficient_scope", "regenerating also needs the 'conversations:write' scope")
    ticket, settle = await _key_limits(key)
    try:
        started = await chat_flow.regenerate(
            get_runtime(), user_id=key.user_id, conversation_id=conversation_id, model=body.model,
            ip=client_ip(request), source="rest", api_key_id=key.key_id, extra_sinks=[settle], key_ticket=ticket,
        )  # fmt: skip
    except BaseException:
        await settle_key(get_runtime().limiter, ticket, 0)
        raise
    return await _answer(started, body.stream)


@router.post("/{conversation_id}/stop")
async def stop(conversation_id: str, key: Write) -> dict[str, bool]:
    """Stop the conversation's running answer, on whichever worker runs it (what was streamed is kept)."""
    rt = get_runtime()
    async with session_scope(read_only=True) as session:
        row = await chats.get_conversation(session=session, user_id=key.user_id, conversation_id=conversation_id)
        if row is None:
            raise _not_found()
        messages = await chats.list_messages(
            session=session, user_id=key.user_id, conversation_id=conversation_id, limit=2
        )
    live = [m.id for m in messages if m.status == MessageStatus.streaming and m.id is not None]
    stopped = [await rt.stop_answer(user_id=key.user_id, message_id=mid) for mid in live]
    return {"stopped": any(stopped)}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


async def _answer(started: Started, stream: bool) -> Response:
    run = started.run
    question, answer = started.messages
    ids = {"conversation_id": started.conversation.id, "question_id": question.id, "answer_id": answer.id}
    if not stream:
        await run.wait_done()
        async with session_scope(read_only=True) as session:
            saved = await chats.get_message(session=session, user_id=run.user_id, message_id=run.message_id)
        if saved is None:
            raise _not_found()
        exchange = Exchange(
            conversation_id=started.conversation.id, question=MessageOut.of(question), answer=MessageOut.of(saved)
        )
        return JSONResponse(exchange.model_dump(mode="json"))

    async def events() -> AsyncIterator[bytes]:
        yield _event("started", ids)
        async for text, reasoning in run.follow(0, 0, 0):
            piece = {k: v for k, v in (("content", text), ("reasoning", reasoning)) if v}
            yield _event("delta", piece)
        await run.wait_done()
        yield _event(
            "done",
            {**ids, "status": run.status.value, "error": run.error, "prompt_tokens": run.prompt_tokens,
             "completion_tokens": run.completion_tokens},
        )  # fmt: skip

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
