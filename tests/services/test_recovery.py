"""Answers that outlive their worker (services/recovery.py): worker A generates and dies (or stops); worker B —
another Runtime on the same Redis and database, as another process would be — takes the answer over and
continues it from where the text was, so the user gets one whole answer. Without Redis, the next start of the
one worker does the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from rubin_app.generation.run import Run
from rubin_app.generation.sinks import AnswerWriter
from rubin_app.models import MessageStatus
from rubin_app.services import chat_flow
from rubin_app.services.recovery import LEASE_TTL, MAX_RESUMES, WORKER_LOST
from rubin_app.services.runtime import Runtime
from tests.fakes.localai_standin import StandIn, reply_to
from tests.services.helpers import history, new_user

MODEL = "standin-model"
RuntimeFactory = Callable[..., Awaitable[Runtime]]
QUESTION = "[[tokens=90]] [[rate=40]] Tell me a long story"
WHOLE = reply_to(QUESTION)


async def until(check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until `check()` is true (it may be a coroutine function)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def start_answer(rt: Runtime, user_id: int, question: str = QUESTION) -> tuple[Run, int, str]:
    """Send a question on `rt`; its run, answer id and conversation id."""
    started = await chat_flow.send_message(rt, user_id=user_id, conversation_id=None, text=question, model=MODEL)
    answer_id = started.messages[1].id
    assert answer_id is not None
    return started.run, answer_id, started.conversation.id


async def die(rt: Runtime, run: Run) -> None:
    """What kill -9 leaves: no final save, no `done` in the live stream, no lease renewed any more."""
    for task in list(rt.relay._tasks):
        task.cancel()
    for sink in run.sinks:
        if isinstance(sink, AnswerWriter):
            sink.discarded = True
    assert run.task is not None
    run.task.cancel()
    await run.wait_done(5)


async def scan_until_ended(worker: Runtime, user_id: int, conversation_id: str, timeout: float = 15.0) -> int:
    """Let `worker` scan (as its loop does, every second) until the answer is no longer streaming; how many it
    resumed."""
    resumed = 0
    deadline = time.monotonic() + timeout
    while (await saved(user_id, conversation_id)).status == MessageStatus.streaming:
        assert time.monotonic() < deadline, "the answer was never taken over"
        resumed += await worker.recovery.scan()
        await asyncio.sleep(0.2)
    return resumed


async def saved(user_id: int, conversation_id: str):
    """The conversation's answer as its owner reads it."""
    return (await history(user_id, conversation_id))[-1]


async def follow_like_a_tab(rt: Runtime, message_id: int, shown: int, user_id: int, conversation_id: str) -> str:
    """What a tab served by `rt` shows: it keeps following the live stream (and its restart) until the answer is
    saved, as state/chat/answers.py does."""
    text = ""
    while (await saved(user_id, conversation_id)).status == MessageStatus.streaming:
        async for piece, _ in rt.relay.follow(message_id, shown + len(text), 0, idle_timeout=1.0):
            text += piece
    return text


async def test_an_answer_whose_worker_died_is_continued_by_another_worker_whole(
    make_redis_runtime: RuntimeFactory, standin: StandIn
) -> None:
    worker_a = await make_redis_runtime(db_flush_seconds=1.0)
    worker_b = await make_redis_runtime(db_flush_seconds=1.0)
    user_id = await new_user()
    run, answer_id, conversation_id = await start_answer(worker_a, user_id)
    await worker_a.recovery.renew()  # A's scan loop renews its leases
    await until(lambda: len(run.text) > 120)
    shown = len(run.text) - 20  # a tab on B shows most of it already
    tab = asyncio.create_task(follow_like_a_tab(worker_b, answer_id, shown, user_id, conversation_id))
    await asyncio.sleep(0.3)  # the relay has published the text so far
    before_death = await worker_b.relay.snapshot(answer_id)
    await worker_a.recovery.renew()  # its last renewal: the lease runs out LEASE_TTL after it
    await die(worker_a, run)
    on_disk = (await saved(user_id, conversation_id)).content
    assert len(on_disk) < len(before_death[0])  # the last periodic save is behind the live stream

    died = time.monotonic()
    assert await worker_b.recovery.scan() == 0  # A's lease still holds
    resumed: list[int] = []

    async def b_took_over() -> bool:
        resumed.append(await worker_b.recovery.scan())
        return sum(resumed) == 1

    await until(b_took_over, timeout=LEASE_TTL + 8)
    assert time.monotonic() - died >= LEASE_TTL - 1.5  # not before A's lease ran out
    answer = await until_saved(user_id, conversation_id)
    assert (answer.status, answer.error, answer.content) == (MessageStatus.complete, "", WHOLE)
    continuation = [r for r in standin.records if r.prefix]
    assert len(continuation) == 1 and WHOLE.startswith(continuation[0].prefix)
    assert len(continuation[0].prefix) >= len(before_death[0])  # resumed from the live stream, not the older save
    shown_text = WHOLE[:shown] + await asyncio.wait_for(tab, 10)
    assert shown_text == WHOLE  # the tab saw one answer that went on: nothing missing, nothing twice
    assert await worker_b.recovery.scan() == 0  # taken over once


async def until_saved(user_id: int, conversation_id: str, timeout: float = 15.0):
    """The answer once it is no longer streaming."""
    deadline = time.monotonic() + timeout
    while (answer := await saved(user_id, conversation_id)).status == MessageStatus.streaming:
        assert time.monotonic() < deadline, f"still streaming: {answer.content!r}"
        await asyncio.sleep(0.1)
    return answer


async def test_a_stopping_worker_hands_its_answers_over_at_once(make_redis_runtime: RuntimeFactory) -> None:
    worker_a, worker_b = await make_redis_runtime(), await make_redis_runtime()
    await worker_b.bus.ensure_listening()
    user_id = await new_user()
    runs = [await start_answer(worker_a, user_id) for _ in range(3)]
    await until(lambda: all(len(run.text) > 40 for run, _, _ in runs))
    first_run, first_id, first_chat = runs[0]
    shown = len(first_run.text)
    arrivals: list[float] = []  # when a tab on B got new text of the first answer

    async def tab_on_b() -> str:
        text = ""
        while (await saved(user_id, first_chat)).status == MessageStatus.streaming:
            async for piece, _ in worker_b.relay.follow(first_id, shown + len(text), 0, idle_timeout=1.0):
                text += piece
                arrivals.append(time.monotonic())
        return text

    tab = asyncio.create_task(tab_on_b())
    await asyncio.sleep(0.3)
    handed = time.monotonic()
    assert sorted(await worker_a.recovery.hand_over()) == sorted(answer_id for _, answer_id, _ in runs)
    for run, _, _ in runs:
        assert run.status == MessageStatus.streaming and run.error == ""  # saved as it was, not interrupted
    await until(lambda: len(worker_b.recovery.resumed) == 3, timeout=5)
    assert time.monotonic() - handed < 3  # taken over on the bus message, not after a lease ran out
    for _, _, conversation_id in runs:
        answer = await until_saved(user_id, conversation_id)
        assert (answer.status, answer.content) == (MessageStatus.complete, WHOLE)
    ended = time.monotonic()
    assert WHOLE[:shown] + await asyncio.wait_for(tab, 10) == WHOLE
    live_after_handover = [t for t in arrivals if handed < t < ended - 0.5]
    assert len(live_after_handover) >= 3, "the tab got the taken-over answer only at its end, not as it was written"


async def test_a_question_sent_the_instant_its_worker_stops_is_saved_and_handed_over(
    make_redis_runtime: RuntimeFactory,
) -> None:
    """A rolling restart's SIGTERM lands while a send is being saved (its answer already asked for): the question is
    saved, and its answer goes over to another worker with the rest instead of ending "interrupted"."""
    worker_a, worker_b = await make_redis_runtime(), await make_redis_runtime()
    await worker_b.bus.ensure_listening()
    user_id = await new_user()
    handing: list[asyncio.Task[list[int]]] = []

    def stop_worker_now(_run: Run) -> None:  # LocalAI is asked; the rows are not saved yet
        handing.append(asyncio.create_task(worker_a.recovery.hand_over()))

    started = await chat_flow.send_message(
        worker_a, user_id=user_id, conversation_id=None, text=QUESTION, model=MODEL, on_run=stop_worker_now
    )
    assert await asyncio.wait_for(handing[0], 10) == [started.messages[1].id]
    answer = await until_saved(user_id, started.conversation.id)
    assert (answer.status, answer.error, answer.content) == (MessageStatus.complete, "", WHOLE)


async def test_without_redis_the_next_start_continues_what_the_last_process_left(
    make_runtime: RuntimeFactory, standin: StandIn
) -> None:
    first = await make_runtime(db_flush_seconds=0.2)
    user_id = await new_user()
    stopped, _, stopped_chat = await start_answer(first, user_id)
    killed, _, killed_chat = await start_answer(first, user_id)
    await until(lambda: len(stopped.text) > 80 and len(killed.text) > 80)
    await asyncio.sleep(0.3)  # a periodic save of both
    await die(first, killed)  # killed: only its last periodic save is on disk
    await first.recovery.hand_over()  # stopped in order: saved as it was
    assert (await saved(user_id, stopped_chat)).status == MessageStatus.streaming
    assert (await saved(user_id, killed_chat)).status == MessageStatus.streaming

    second = await make_runtime()  # the next start
    assert await second.recovery.scan() == 2
    for conversation_id in (stopped_chat, killed_chat):
        answer = await until_saved(user_id, conversation_id)
        assert (answer.status, answer.content) == (MessageStatus.complete, WHOLE)
    assert len([r for r in standin.records if r.prefix]) == 2


async def test_retry_mode_keeps_the_partial_answer_for_retry(make_redis_runtime: RuntimeFactory) -> None:
    worker_a = await make_redis_runtime(db_flush_seconds=1.0, resume_answers="retry")
    worker_b = await make_redis_runtime(db_flush_seconds=1.0, resume_answers="retry")
    user_id = await new_user()
    run, answer_id, conversation_id = await start_answer(worker_a, user_id)
    await until(lambda: len(run.text) > 100)
    await asyncio.sleep(0.3)
    live_text, _ = await worker_b.relay.snapshot(answer_id)
    await die(worker_a, run)
    assert await scan_until_ended(worker_b, user_id, conversation_id) == 0  # kept, not continued
    answer = await saved(user_id, conversation_id)
    assert (answer.status, answer.error) == (MessageStatus.interrupted, WORKER_LOST)
    assert answer.content == live_text and WHOLE.startswith(answer.content)  # nothing of the stream lost
    again = await chat_flow.regenerate(worker_b, user_id=user_id, conversation_id=conversation_id, model=MODEL)
    assert await again.run.wait_done(15)
    assert (await saved(user_id, conversation_id)).content == WHOLE  # Retry answers it whole


async def test_a_stop_pressed_while_nobody_runs_the_answer_is_honoured(
    make_redis_runtime: RuntimeFactory, standin: StandIn
) -> None:
    worker_a, worker_b = await make_redis_runtime(), await make_redis_runtime()
    user_id = await new_user()
    run, answer_id, conversation_id = await start_answer(worker_a, user_id)
    await until(lambda: len(run.text) > 40)
    await die(worker_a, run)
    await worker_b.stop_answer(user_id=user_id, message_id=answer_id)  # the tab's Stop reaches no live run
    assert await scan_until_ended(worker_b, user_id, conversation_id) == 0
    answer = await saved(user_id, conversation_id)
    assert (answer.status, answer.error) == (MessageStatus.interrupted, "stopped")
    assert answer.content and WHOLE.startswith(answer.content)
    assert not [r for r in standin.records if r.prefix]  # the model was not asked again


async def test_an_answer_that_keeps_losing_its_worker_is_kept_for_retry(
    make_redis_runtime: RuntimeFactory, redis_client
) -> None:
    worker_a, worker_b = await make_redis_runtime(), await make_redis_runtime()
    user_id = await new_user()
    run, answer_id, conversation_id = await start_answer(worker_a, user_id)
    await until(lambda: len(run.text) > 40)
    await die(worker_a, run)
    assert worker_b.redis is not None
    await redis_client.set(worker_b.redis.key("resumes", answer_id), MAX_RESUMES)  # resumed (and lost) 3 times
    assert await scan_until_ended(worker_b, user_id, conversation_id) == 0
    answer = await saved(user_id, conversation_id)
    assert (answer.status, answer.error) == (MessageStatus.interrupted, WORKER_LOST)
