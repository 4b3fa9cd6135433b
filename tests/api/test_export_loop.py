"""A big account export does not stall the server: other users' events keep running while it is built.

The export runs in this test's event loop (through the ASGI app, as the server would run it) next to a
coroutine that ticks every few milliseconds; the most CPU time the loop's thread spent between two ticks
is how long the export held the loop. The old export loaded, converted and serialised every message in
one go on the loop.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import insert
from starlette.applications import Starlette
from starlette.routing import Route

from rubin_app.api.auth import export
from rubin_app.models import Conversation, Message, MessageRole, MessageStatus
from rubin_app.services import sessions
from rubin_app.services.db import session_scope
from rubin_app.services.migrate import upgrade_head
from rubin_app.services.runtime import Runtime
from rubin_app.services.sessions import COOKIE_NAME
from tests.conftest import async_url
from tests.factories import make_user

CONVERSATIONS = 40
PER_CONVERSATION = 1_000  # 40,000 messages, ~20 MB of JSON
MAX_GAP = 0.1  # seconds: the loop must never be held longer than this


@pytest.fixture
def db_url(empty_database: Callable[[str], str]) -> str:
    """SQLite only: what is measured is the event loop, not the database (make_runtime disposes the engine)."""
    url = empty_database("sqlite")
    upgrade_head(url)
    return async_url(url)


async def big_account() -> tuple[int, str]:
    """A user with CONVERSATIONS x PER_CONVERSATION messages (inserted in bulk) and a session token."""
    async with session_scope() as session:
        user = await make_user(session, display_name="Big")
        assert user.id is not None
        user_id = user.id
        conversations = [Conversation(user_id=user_id, title=f"Chat {i}", model="m") for i in range(CONVERSATIONS)]
        session.add_all(conversations)
        await session.flush()
        conversation_ids = [c.id for c in conversations]
        token = await sessions.create(session=session, user_id=user_id, lifetime=timedelta(hours=1))
    body = "Ответ с текстом, который длиннее одной строки, " * 8  # ~400 characters, not ASCII
    for cid in conversation_ids:
        rows = [
            dict(
                conversation_id=cid, user_id=user_id, content=f"{n}: {body}", reasoning="",
                role=(MessageRole.user if n % 2 == 0 else MessageRole.assistant).name,
                status=MessageStatus.complete.name, model="m", error="", error_detail="",
            )
            for n in range(PER_CONVERSATION)
        ]  # fmt: skip
        async with session_scope() as session:
            await (await session.connection()).execute(insert(Message), rows)
    return user_id, token


async def longest_gap_while(work: Awaitable[httpx.Response]) -> tuple[httpx.Response, float, float]:
    """Run `work` next to a ticker; return its result and the longest stretch between two ticks.

    The stretch is measured twice: in CPU time of the loop's thread (what the loop was busy with: the
    assertion, steady while other processes load the machine) and in wall time (for the message).
    """
    cpu_gaps: list[float] = []
    wall_gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now_wall, now_cpu = time.perf_counter(), time.thread_time()
            wall_gaps.append(now_wall - wall)
            cpu_gaps.append(now_cpu - cpu)
            wall, cpu = now_wall, now_cpu

    # A full collection of the cyclic GC walks every object of this process (~180,000 after the imports,
    # 150 ms and more on a busy machine) and pauses every coroutine alike, whatever triggered it: it is
    # kept out of the window, which measures what the export itself holds the loop for.
    gc.collect()
    gc.disable()
    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    try:
        result = await work
    finally:
        done.set()
        await ticking
        gc.enable()
    return result, max(cpu_gaps), max(wall_gaps)


async def test_a_big_export_does_not_block_the_event_loop(runtime: Runtime) -> None:
    _, token = await big_account()
    app = Starlette(routes=[Route("/api/account/export", export)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=120) as client:
        client.cookies.set(COOKIE_NAME, token)
        began = time.monotonic()
        response, gap, wall = await longest_gap_while(client.get("/api/account/export"))
        took = time.monotonic() - began
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"].startswith('attachment; filename="rubin-export-')
    assert response.headers["cache-control"] == "no-store"
    data = json.loads(response.content)
    assert data["format"] == "rubin-export/1" and data["user"]["display_name"] == "Big"
    assert [c["title"] for c in data["conversations"]] == [f"Chat {i}" for i in range(CONVERSATIONS)]
    messages = [m for c in data["conversations"] for m in c["messages"]]
    assert len(messages) == CONVERSATIONS * PER_CONVERSATION
    assert [int(m["content"].split(":")[0]) for m in data["conversations"][7]["messages"]] == list(
        range(PER_CONVERSATION)
    )
    assert messages[1]["role"] == "assistant" and messages[1]["content"].startswith("1: Ответ")
    held = f"the export held the loop for {gap * 1000:.0f} ms of CPU ({wall * 1000:.0f} ms wall, {took:.1f} s in all)"
    assert gap < MAX_GAP, held
