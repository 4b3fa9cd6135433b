"""Helpers the webhook tests share: queue an answer's event, read the delivery rows, wait for a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlmodel import col, select

from rubin_app.webhooks.events import emit
from rubin_app.webhooks.models import WebhookDelivery

Scope = Callable[[], Any]


async def emit_completed(scope: Scope, user_id: int, content: str = "Forty-two.", times: int = 1) -> int:
    """`times` message.completed events of `user_id`, committed in one transaction; deliveries queued."""
    queued = 0
    async with scope() as s:
        for _ in range(times):
            queued += await emit(
                s,
                event_type="message.completed",
                user_id=user_id,
                data={
                    "conversation_id": "c1", "message_id": 7, "model": "m", "source": "ui", "prompt_tokens": 3,
                    "completion_tokens": 5, "duration_ms": 120, "content": content,
                },
            )  # fmt: skip
    return queued


async def deliveries(scope: Scope) -> list[WebhookDelivery]:
    """Every delivery row, oldest first."""
    async with scope() as s:
        return list((await s.exec(select(WebhookDelivery).order_by(col(WebhookDelivery.id)))).all())


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Wait until `check()` is true (AssertionError after `timeout`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)
