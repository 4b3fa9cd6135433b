"""Live answers across workers: worker A generates, worker B (another Runtime on the same Redis and
database) follows the answer through the Redis stream, as a tab served by B would."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable

from rubin_app.models import MessageStatus
from rubin_app.services import chat_flow
from rubin_app.services.relay import KEEP_SECONDS, Relay
from rubin_app.services.runtime import Runtime
from tests.services.helpers import new_user

MODEL = "standin-model"
RuntimeFactory = Callable[..., Awaitable[Runtime]]


async def collect(rt: Runtime, message_id: int, text_offset: int = 0, think_offset: int = 0, idle: float = 10.0):
    """Everything a follower on `rt` receives: [(new text, new reasoning)]."""
    pieces = []
    async for text, think in rt.relay.follow(message_id, text_offset, think_offset, idle_timeout=idle):
        pieces.append((text, think))
    return pieces


async def test_another_worker_follows_a_live_answer_from_an_offset(make_redis_runtime: RuntimeFactory) -> None:
    worker_a, worker_b = await make_redis_runtime(), await make_redis_runtime()
    user_id = await new_user()
    started = await chat_flow.send_message(
        worker_a, user_id=user_id, conversation_id=None, text="[[tokens=60]] [[rate=60]] [[reasoning]] Tell me",
        model=MODEL,
    )  # fmt: skip
    run = started.run
    message_id = started.messages[1].id
    assert worker_b.generation.get(user_id=user_id, message_id=message_id) is None  # not B's own run
    while len(run.text) < 40:  # the tab on B already shows the beginning (e.g. from the saved message)
        await asyncio.sleep(0.02)
    offset = len(run.text)

    seen_live: list[bool] = []
    received_text, received_think = "", ""
    began = time.monotonic()
    async with asyncio.timeout(10):
        async for text, think in worker_b.relay.follow(message_id, offset, 0, idle_timeout=10):
            seen_live.append(not run.finished)
            received_text += text
            received_think += think
    ended_after_done = time.monotonic() - began

    assert run.status == MessageStatus.complete
    assert received_text == run.text[offset:]  # all of the rest, in order, nothing twice
    assert received_think == run.reasoning == "Thinking about it"
    assert len(seen_live) > 3 and seen_live[0]  # pieces arrived while A was still generating
    assert ended_after_done < 5  # ended on the done entry, not on the 10 s idle timeout


async def test_a_follower_arriving_after_the_end_gets_the_whole_answer(
    make_redis_runtime: RuntimeFactory, redis_client
) -> None:
    worker_a, worker_b = await make_redis_runtime(), await make_redis_runtime()
    user_id = await new_user()
    started = await chat_flow.send_message(
        worker_a, user_id=user_id, conversation_id=None, text="[[tokens=30]] Hello", model=MODEL
    )
    assert await started.run.wait_done(5)
    message_id = started.messages[1].id
    await worker_a.relay.close()  # the publisher has written its done entry

    began = time.monotonic()
    pieces = await collect(worker_b, message_id, idle=10)
    assert time.monotonic() - began < 2
    assert "".join(t for t, _ in pieces) == started.run.text
    assert await collect(worker_b, message_id, text_offset=len(started.run.text), idle=10) == []
    assert 0 < await redis_client.ttl(f"rubin:run:{message_id}") <= KEEP_SECONDS  # the stream does not stay forever


async def test_a_follower_of_an_unknown_answer_ends_after_the_idle_timeout(make_redis_runtime: RuntimeFactory) -> None:
    worker_b = await make_redis_runtime()
    began = time.monotonic()
    assert await collect(worker_b, 987654, idle=2.0) == []
    waited = time.monotonic() - began
    # Not earlier: the other worker's model may just be slow to start (its time to first token).
    assert 2.0 <= waited < 3.5


async def test_a_slow_first_token_is_still_followed_live(make_redis_runtime: RuntimeFactory) -> None:
    worker_a, worker_b = await make_redis_runtime(), await make_redis_runtime()
    user_id = await new_user()
    started = await chat_flow.send_message(
        worker_a, user_id=user_id, conversation_id=None, text="[[ttft=1.5]] [[tokens=10]] Think first", model=MODEL
    )
    pieces = await collect(worker_b, started.messages[1].id, idle=5.0)
    assert started.run.status == MessageStatus.complete
    assert "".join(t for t, _ in pieces) == started.run.text


async def test_a_follower_reads_on_when_the_answer_is_published_again_from_its_start(
    make_redis_runtime: RuntimeFactory, redis_client
) -> None:
    """A stopping worker hands its answer over; the worker resuming it drops the stream and publishes the answer
    again from its start. A tab following it keeps receiving the rest live (it is not left waiting for the end)."""
    worker = await make_redis_runtime()
    relay = Relay(worker.relay.store)  # entries written by hand below, in clear
    message_id = 900_000 + secrets.randbelow(99_999)
    key = worker.relay.store.key("run", message_id)

    async def publish(*pieces: tuple[int, str]) -> None:
        for offset, text in pieces:
            await redis_client.xadd(key, {"t": text, "r": "", "o": str(offset), "ro": "0"})
            await asyncio.sleep(0.05)

    await publish((0, "Hello "))  # the first worker's first piece: the tab shows it already
    received: list[tuple[str, bool]] = []
    done = asyncio.Event()

    async def follow() -> None:
        async for text, _ in relay.follow(message_id, text_offset=6, idle_timeout=5):
            received.append((text, done.is_set()))

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.3)
    await publish((6, "world"))  # followed live from the first worker
    await asyncio.sleep(0.3)
    await relay.reset(message_id)  # taken over: published again from its start, then on
    await publish((0, "Hello world"), (11, ", again"), (18, " and on"))
    await asyncio.sleep(0.3)
    done.set()
    await redis_client.xadd(key, {"done": "1"})
    await asyncio.wait_for(follower, 5)
    assert "".join(text for text, _ in received) == "world, again and on"  # each part once, in order
    assert not any(after_done for _, after_done in received), "the rest must arrive as it is published"
