"""Chat completions for API callers: admission (the key's limits, then the user's), the run, and its answer as
an OpenAI chat.completion or as a stream of chat.completion.chunk frames.

A stateless call saves no conversation: its run has no answer writer, and a client that leaves mid-stream
cancels the request to LocalAI. Usage is accounted for every call (the usage sink), quotas settled at the end.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from rubin_app.accounts.api_keys import KeyPrincipal
from rubin_app.accounts.key_limits import admit_key, settle_key
from rubin_app.api.errors import from_input_error, message_for
from rubin_app.core.errors import ApiError, openai_error
from rubin_app.generation.run import Run
from rubin_app.generation.sinks import AfterRun
from rubin_app.llm.types import ChatRequest
from rubin_app.models import MessageStatus
from rubin_app.services import chat_flow
from rubin_app.services.chats import InputError
from rubin_app.services.context import estimate_tokens
from rubin_app.services.runtime import Runtime


async def start_stateless(rt: Runtime, key: KeyPrincipal, request: ChatRequest, ip: str, *, stream: bool) -> Run:
    """Check the model and the limits, then start generating (nothing saved but usage)."""
    try:
        await chat_flow.check_model(rt, request.model, user_id=key.user_id)
        key_ticket = await admit_key(rt.limiter, key, rt.admission.reservation)
        try:
            slot = await rt.admission.admit(key.user_id, ip)
        except BaseException:
            await settle_key(rt.limiter, key_ticket, 0)
            raise
    except InputError as exc:
        raise from_input_error(exc) from None

    async def settle(run: Run) -> None:
        await settle_key(rt.limiter, key_ticket, run.quota_tokens)

    cache_key, replay = await rt.cache_policy.lookup(request, key.user_id)
    return rt.generation.start(
        request, user_id=key.user_id, sinks=[*rt.sinks(None), AfterRun(settle)], cache_key=cache_key, replay=replay,
        slot=slot, source="api", api_key_id=key.key_id, whole=not stream, key_ticket=key_ticket,
    )  # fmt: skip


def usage_of(run: Run) -> dict[str, int]:
    """OpenAI's usage object (the prompt estimated when the server did not say, e.g. a cache hit)."""
    prompt = run.prompt_tokens
    if prompt is None:
        prompt = sum(estimate_tokens(text) for text in run.request.prompt_text())
    completion = run.completion_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finish_reason(run: Run) -> str:
    if run.tool_calls:
        return "tool_calls"
    return run.finish_reason or ("length" if run.cut_short else "stop")


def failure_of(run: Run) -> ApiError | None:
    """The error a run ended with, as the API says it (None: it completed, or has not ended)."""
    if not run.finished or run.status == MessageStatus.complete:
        return None
    text = message_for(run.error)
    return ApiError(run.error or "internal", f"{text} ({run.error_detail})" if run.error_detail else text)


def completion_body(run: Run, completion_id: str, created: int) -> dict[str, Any]:
    """A finished run as an OpenAI chat.completion."""
    message: dict[str, Any] = {"role": "assistant", "content": run.text}
    if run.reasoning:
        message["reasoning_content"] = run.reasoning
    if run.tool_calls:
        message["tool_calls"] = run.tool_calls
        message["content"] = run.text or None
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": run.model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(run), "logprobs": None}],
        "usage": usage_of(run),
    }  # fmt: skip


async def complete(run: Run) -> dict[str, Any]:
    """Wait for the run and answer it whole (an ApiError when it failed without an answer)."""
    await run.wait_done()
    error = failure_of(run)
    if error is not None and not run.text:
        raise error
    return completion_body(run, f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()))


def _frame(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"data: {data}\n\n".encode()


async def stream_chunks(
    rt: Runtime, run: Run, *, include_usage: bool, cancel_on_disconnect: bool, extra: dict[str, Any] | None = None
) -> AsyncIterator[bytes]:
    """The run as OpenAI chat.completion.chunk SSE frames, then `data: [DONE]`.

    Each piece goes out as it arrives (no coalescing: the API is for programs, they want the lowest latency).
    A failure after some text is sent as an error frame (what the OpenAI SDKs raise as an APIError). When the
    client leaves, a stateless run is cancelled upstream (`cancel_on_disconnect`); a stored one goes on."""
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    head = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": run.model,
        **(extra or {}),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _frame({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]})

    finished = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        async for text, reasoning in run.follow(0, 0, 0):
            if reasoning:
                yield chunk({"reasoning_content": reasoning})
            if text:
                yield chunk({"content": text})
        error = failure_of(run)
        if error is not None:
            yield _frame(openai_error(error.code, error.message))
        else:
            for index, call in enumerate(run.tool_calls):
                yield chunk({"tool_calls": [{"index": index, **call}]})
            yield chunk({}, _finish_reason(run))
            if include_usage:
                yield _frame({**head, "choices": [], "usage": usage_of(run)})
        yield _frame("[DONE]")
        finished = True
    finally:
        if not finished and cancel_on_disconnect and not run.finished:
            await rt.generation.stop_run(run, wait=False)
