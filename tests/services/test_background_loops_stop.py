"""Background loops stop when told to, even when the stop lands just as they are woken.

On Python 3.11 a loop that waited with `asyncio.wait_for(event.wait(), t)` lost a `cancel()` arriving in the same
moment as the event: it ran on, and a shutdown awaiting it waited forever (rubin_app/core/waiting.py).
"""

from __future__ import annotations

import asyncio

from sqlmodel import func, select

from rubin_app.core.waiting import stop_task, wait_event
from rubin_app.generation.run import Run
from rubin_app.llm.types import ChatRequest
from rubin_app.models import MessageStatus, UsageRecord
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime
from tests.services.helpers import new_user


async def test_a_waiting_loop_stops_when_cancelled_as_its_event_is_set() -> None:
    wake = asyncio.Event()
    rounds = 0

    async def poll() -> None:
        nonlocal rounds
        while True:
            await wait_event(wake, 1.0)
            wake.clear()
            rounds += 1

    task = asyncio.create_task(poll())
    await asyncio.sleep(0.05)
    wake.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=3)
    assert task in done and task.cancelled() and rounds == 0


async def test_stop_task_sends_a_lost_cancel_again() -> None:
    lost = 0

    async def stubborn() -> None:  # like a client library whose wait swallowed the first cancel()
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if lost:
                    raise
                lost += 1
                task = asyncio.current_task()
                assert task is not None
                task.uncancel()

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.01)
    assert await stop_task(task, each=0.2) is True
    assert task.cancelled() and lost == 1


async def test_wait_event_says_whether_the_event_came() -> None:
    wake = asyncio.Event()
    assert await wait_event(wake, 0.05) is False
    asyncio.get_running_loop().call_later(0.05, wake.set)
    assert await wait_event(wake, 5) is True


async def test_usage_recorder_closes_when_a_full_batch_wakes_it_at_the_same_moment(runtime: Runtime) -> None:
    recorder = runtime.usage
    recorder.batch = 1  # every row wakes the flusher
    user_id = await new_user()
    request = ChatRequest.of_turns("standin-model", [{"role": "user", "content": "Hi"}])
    first = Run(message_id=0, conversation_id="", user_id=user_id, request=request, status=MessageStatus.complete)
    await recorder.on_finish(first)  # starts the flusher
    await asyncio.sleep(0.1)  # it writes that row and waits again
    second = Run(message_id=0, conversation_id="", user_id=user_id, request=request, status=MessageStatus.complete)
    await recorder.on_finish(second)  # wakes it...
    closing = asyncio.create_task(recorder.close())  # ...and the stop lands in the same moment
    done, _ = await asyncio.wait({closing}, timeout=5)
    assert closing in done, "the usage recorder did not stop"
    async with session_scope() as session:
        rows = (await session.exec(select(func.count()).where(UsageRecord.user_id == user_id))).one()
    assert rows == 2  # both answers counted, nothing lost in the stop


async def test_knowledge_ingestion_stops_when_a_file_is_queued_at_the_same_moment(runtime: Runtime) -> None:
    job = runtime.knowledge
    job.start()
    await asyncio.sleep(0.2)  # it looked for work and waits for the next poll
    job.wake()  # a file was queued...
    stopping = asyncio.create_task(job.stop())  # ...as the worker stops
    done, _ = await asyncio.wait({stopping}, timeout=5)
    assert stopping in done, "the ingestion loop did not stop"
