"""Stop reaches an answer on another worker (through Redis), and only its owner's Stop does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from rubin_app.models import MessageStatus
from rubin_app.services import chat_flow
from rubin_app.services.runtime import Runtime
from tests.fakes.localai_standin import StandIn
from tests.services.helpers import history, new_user

MODEL = "standin-model"
RuntimeFactory = Callable[..., Awaitable[Runtime]]


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_a_stop_pressed_on_another_worker_stops_the_answer(
    make_redis_runtime: RuntimeFactory, standin: StandIn
) -> None:
    generating, other = await make_redis_runtime(title_mode="first_message"), await make_redis_runtime()
    for worker in (generating, other):
        await worker.bus.ensure_listening()  # what each worker's lifespan does at start (Runtime.start)
    standin.config.token_rate = 20
    user_id, stranger = await new_user(), await new_user()
    started = await chat_flow.send_message(
        generating, user_id=user_id, conversation_id=None, text="[[tokens=400]] long", model=MODEL
    )
    run = started.run
    await _until(lambda: len(run.text) > 20)

    assert other.generation.get(user_id=user_id, message_id=run.message_id) is None  # not this worker's run
    assert await other.stop_answer(user_id=stranger, message_id=run.message_id)  # published, but not theirs...
    await asyncio.sleep(0.3)
    assert not run.finished  # ...so it goes on

    assert await other.stop_answer(user_id=user_id, message_id=run.message_id)
    assert await run.wait_done(timeout=5)
    assert (run.status, run.error) == (MessageStatus.interrupted, "stopped")
    assert standin.cancelled == 1  # the request to LocalAI was closed
    saved = (await history(user_id, started.conversation.id))[-1]
    assert (saved.status, saved.error, saved.content) == (MessageStatus.interrupted, "stopped", run.text)


async def test_without_redis_a_stop_for_an_answer_not_here_says_so(runtime: Runtime) -> None:
    assert not await runtime.stop_answer(user_id=1, message_id=12345)
