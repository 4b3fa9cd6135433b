"""Server-side answer runs: streamed from the stand-in, saved to a real database, independent of followers."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlmodel import select

from rubin_app.generation.run import Run
from rubin_app.llm.types import ChatRequest
from rubin_app.models import Message, MessageRole, MessageStatus
from rubin_app.services import chats
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime
from tests.factories import make_conversation, make_message, make_user
from tests.fakes.localai_standin import StandIn, expected_reply, prompt_tokens
from tests.services.conftest import RuntimeFactory

MODEL = "standin-model"


@dataclass
class Prepared:
    user_id: int
    conversation_id: str
    message_id: int
    messages: list[dict[str, str]]


async def prepare(question: str) -> Prepared:
    """A saved question and an empty 'streaming' answer, as chat_flow leaves them before generating."""
    async with session_scope() as s:
        user = await make_user(s)
        assert user.id is not None
        conv = await make_conversation(s, user_id=user.id, model=MODEL)
        await make_message(s, conversation=conv, role=MessageRole.user, content=question)
        answer = await make_message(
            s, conversation=conv, role=MessageRole.assistant, content="", status=MessageStatus.streaming
        )
    assert answer.id is not None
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]
    return Prepared(user.id, conv.id, answer.id, messages)


def start(rt: Runtime, p: Prepared) -> Run:
    """Generate the prepared answer as the chat UI does: saved into its row, cached, accounted."""
    request = ChatRequest.of_turns(MODEL, p.messages, rt.chat_params())
    return rt.generation.start(
        request, user_id=p.user_id, sinks=rt.sinks(rt.answer_writer()), conversation_id=p.conversation_id,
        message_id=p.message_id,
    )  # fmt: skip


async def saved(p: Prepared) -> Message:
    async with session_scope() as s:
        message = await chats.get_message(session=s, user_id=p.user_id, message_id=p.message_id)
    assert message is not None
    return message


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- complete answers


async def test_answer_streams_and_is_saved_complete_with_measurements(runtime: Runtime) -> None:
    p = await prepare("[[ttft=0.15]] What is a ruby?")
    run = start(runtime, p)
    assert runtime.generation.active_ids() == [p.message_id]
    assert await run.wait_done(timeout=5)

    message = await saved(p)
    assert message.status == MessageStatus.complete
    assert message.content == expected_reply(p.messages) == run.text
    assert message.error == ""
    assert message.ttft_ms is not None and message.ttft_ms >= 150
    assert message.duration_ms is not None and message.duration_ms >= message.ttft_ms
    assert message.completion_tokens == 20
    assert message.prompt_tokens == prompt_tokens(p.messages)
    assert runtime.generation.active_ids() == []
    assert runtime.generation.get(user_id=p.user_id, message_id=p.message_id) is None


async def test_reasoning_is_saved_apart_from_the_answer(runtime: Runtime) -> None:
    p = await prepare("[[reasoning]] think first")
    run = start(runtime, p)
    assert await run.wait_done(timeout=5)
    message = await saved(p)
    assert message.reasoning == "Thinking about it"
    assert message.content == expected_reply(p.messages)


async def test_answer_is_written_to_the_database_while_it_streams(runtime: Runtime, standin: StandIn) -> None:
    standin.config.token_rate = 40
    p = await prepare("[[tokens=40]] stream slowly")
    full = expected_reply(p.messages)
    run = start(runtime, p)

    await wait_for(lambda: len(run.text) > 30)
    await asyncio.sleep(0.15)  # > db_flush_seconds (0.05) with pieces arriving
    mid = await saved(p)
    assert mid.status == MessageStatus.streaming
    assert mid.content, "nothing saved mid-stream"
    assert full.startswith(mid.content)
    assert mid.content != full
    assert mid.duration_ms is None
    assert mid.ttft_ms is not None

    assert await run.wait_done(timeout=5)
    final = await saved(p)
    assert (final.status, final.content) == (MessageStatus.complete, full)


async def test_the_run_finishes_and_saves_when_the_tab_is_closed(runtime: Runtime, standin: StandIn) -> None:
    standin.config.token_rate = 100
    p = await prepare("[[tokens=30]] long answer")
    run = start(runtime, p)
    follower = run.follow(interval=0.01)
    first, _ = await anext(follower)
    assert first
    await follower.aclose()  # the tab goes away
    del follower

    assert await run.wait_done(timeout=5)
    message = await saved(p)
    assert message.status == MessageStatus.complete
    assert message.content == expected_reply(p.messages)
    assert standin.completed == 1 and standin.cancelled == 0


# --------------------------------------------------------------------------- stop and failures


async def test_stop_keeps_the_partial_answer_and_stops_localai(runtime: Runtime, standin: StandIn) -> None:
    standin.config.token_rate = 30
    standin.config.tokens = 200
    p = await prepare("tell me everything")
    full = expected_reply(p.messages, tokens=200)
    run = start(runtime, p)
    await wait_for(lambda: len(run.text) > 15)

    # another user cannot stop it
    assert await runtime.generation.stop(user_id=p.user_id + 1000, message_id=p.message_id) is False
    assert await runtime.generation.stop(user_id=p.user_id, message_id=p.message_id) is True
    assert run.finished

    message = await saved(p)
    assert message.status == MessageStatus.interrupted
    assert message.error == "stopped"
    assert message.content == run.text
    assert message.content and full.startswith(message.content) and message.content != full
    assert message.duration_ms is not None
    await wait_for(lambda: standin.cancelled == 1, timeout=1.0)
    assert standin.completed == 0
    assert await runtime.generation.stop(user_id=p.user_id, message_id=p.message_id) is False


async def test_stop_during_database_writes_still_stops_localai(make_runtime: Callable, standin: StandIn) -> None:  # type: ignore[type-arg]
    """Stop often lands while the run saves its progress (outside the stream): the request must still close.

    The answer is saved after every piece, and the garbage collector is off so that only the code can close
    the request (a forgotten stream would otherwise be closed whenever a collection happens to run).
    """
    rt = await make_runtime(db_flush_seconds=0.001)
    standin.config.token_rate = 200
    standin.config.tokens = 2000
    gc.disable()
    try:
        for attempt in range(10):
            standin.reset()
            p = await prepare("tell me everything")
            run = start(rt, p)
            await wait_for(lambda: len(run.text) > 10)  # noqa: B023
            await asyncio.sleep(0.003 * attempt)
            assert await rt.generation.stop(user_id=p.user_id, message_id=p.message_id) is True
            await wait_for(lambda: standin.cancelled == 1, timeout=1.0)
            message = await saved(p)
            assert (message.status, message.error) == (MessageStatus.interrupted, "stopped")
            assert message.content == run.text
    finally:
        gc.enable()


async def test_stop_right_after_start_is_prompt_and_saved(runtime: Runtime, standin: StandIn) -> None:
    """A double click: Stop arrives before the run has taken its first step."""
    p = await prepare("hello")
    run = start(runtime, p)
    started = time.monotonic()
    assert await runtime.generation.stop(user_id=p.user_id, message_id=p.message_id) is True
    assert time.monotonic() - started < 1
    assert run.finished
    assert runtime.generation.active_ids() == []
    message = await saved(p)
    assert (message.status, message.error, message.content) == (MessageStatus.interrupted, "stopped", "")
    assert standin.completed == 0


async def test_shutdown_right_after_start_is_prompt_and_saved(runtime: Runtime) -> None:
    p = await prepare("hello")
    start(runtime, p)
    started = time.monotonic()
    await runtime.generation.shutdown()
    assert time.monotonic() - started < 1
    assert runtime.generation.active_ids() == []
    message = await saved(p)
    assert (message.status, message.error) == (MessageStatus.interrupted, "shutdown")


async def test_error_frame_is_saved_as_interrupted_with_the_partial_text(runtime: Runtime) -> None:
    p = await prepare("[[fault=error_frame]] story please")
    run = start(runtime, p)
    assert await run.wait_done(timeout=5)
    message = await saved(p)
    assert message.status == MessageStatus.interrupted
    assert message.error == "upstream"
    assert message.error_detail == "backend crashed"
    assert message.content and expected_reply(p.messages).startswith(message.content)


async def test_a_dropped_connection_is_continued_and_the_answer_saved_whole(runtime: Runtime, standin: StandIn) -> None:
    """LocalAI's stream breaks mid-answer (a restart, a proxy): the answer is asked again from its partial text."""
    p = await prepare("[[fault=drop]] story please")
    run = start(runtime, p)
    assert await run.wait_done(timeout=10)
    message = await saved(p)
    assert (message.status, message.error, message.content) == (MessageStatus.complete, "", expected_reply(p.messages))
    first, second = [r for r in standin.records if not r.title]
    assert first.outcome == "dropped" and second.prefix and expected_reply(p.messages).startswith(second.prefix)
    assert message.completion_tokens == first.pieces_sent + second.pieces_sent  # both parts counted


async def test_a_connection_that_keeps_dropping_ends_interrupted_with_its_text(
    runtime: Runtime, standin: StandIn
) -> None:
    p = await prepare("[[fault=drop]] [[refault]] story please")
    run = start(runtime, p)
    assert await run.wait_done(timeout=30)
    message = await saved(p)
    assert (message.status, message.error) == (MessageStatus.interrupted, "dropped")
    assert message.content and expected_reply(p.messages).startswith(message.content)
    assert len([r for r in standin.records if r.prefix]) == 5  # MAX_CONTINUATIONS, then it gives up


async def test_without_continuation_a_dropped_connection_is_saved_as_interrupted(
    make_runtime: Callable,
    standin: StandIn,  # type: ignore[type-arg]
) -> None:
    rt = await make_runtime(resume_answers="retry")
    p = await prepare("[[fault=drop]] story please")
    run = start(rt, p)
    assert await run.wait_done(timeout=5)
    message = await saved(p)
    assert (message.status, message.error) == (MessageStatus.interrupted, "dropped")
    assert message.content
    assert not [r for r in standin.records if r.prefix]


async def test_failure_before_any_text_is_an_error(runtime: Runtime, standin: StandIn) -> None:
    standin.config.fault = "http500"
    p = await prepare("hello")
    run = start(runtime, p)
    assert await run.wait_done(timeout=5)
    message = await saved(p)
    assert message.status == MessageStatus.error
    assert message.error == "server"
    assert "internal server error" in message.error_detail
    assert message.content == ""
    assert message.ttft_ms is None


async def test_unreachable_server_is_an_error(make_runtime: Callable, standin: StandIn) -> None:  # type: ignore[type-arg]
    from tests.conftest import free_port

    rt = await make_runtime(localai_url=f"http://127.0.0.1:{free_port()}")
    p = await prepare("hello")
    run = start(rt, p)
    assert await run.wait_done(timeout=5)
    message = await saved(p)
    assert (message.status, message.error) == (MessageStatus.error, "unreachable")


async def test_shutdown_saves_running_answers(runtime: Runtime, standin: StandIn) -> None:
    standin.config.token_rate = 30
    standin.config.tokens = 200
    p = await prepare("long")
    run = start(runtime, p)
    await wait_for(lambda: bool(run.text))
    await runtime.generation.shutdown()
    message = await saved(p)
    assert (message.status, message.error) == (MessageStatus.interrupted, "shutdown")
    assert message.content == run.text


async def test_the_recovery_scan_leaves_live_answers_alone(runtime: Runtime, standin: StandIn) -> None:
    standin.config.token_rate = 30
    standin.config.tokens = 200
    live = await prepare("live")
    orphan = await prepare("orphan")  # never started: its process "died" (one worker, no Redis)
    run = start(runtime, live)
    await wait_for(lambda: bool(run.text))
    assert await runtime.recovery.scan() == 1  # the orphan is answered now; the live one is not touched
    assert runtime.generation.get(user_id=live.user_id, message_id=live.message_id) is run
    resumed = runtime.generation.get(user_id=orphan.user_id, message_id=orphan.message_id)
    assert resumed is not None and resumed is not run
    await runtime.generation.stop(user_id=live.user_id, message_id=live.message_id)
    assert (await saved(live)).error == "stopped"
    assert await resumed.wait_done(15)
    assert (await saved(orphan)).status == MessageStatus.complete


# --------------------------------------------------------------------------- followers


async def test_late_follower_gets_exactly_the_rest_coalesced(runtime: Runtime, standin: StandIn) -> None:
    standin.config.token_rate = 300
    p = await prepare("[[tokens=150]] fast answer")
    full = expected_reply(p.messages)
    run = start(runtime, p)
    await wait_for(lambda: len(run.text) > 20)

    snapshot = run.text  # what a newly opened tab renders from the run
    assert runtime.generation.get(user_id=p.user_id, message_id=p.message_id) is run
    assert runtime.generation.get(user_id=p.user_id + 1000, message_id=p.message_id) is None
    pieces = [text async for text, _ in run.follow(text_offset=len(snapshot), interval=0.05)]

    assert run.finished
    assert snapshot + "".join(pieces) == full
    remaining_pieces = 150 - len(snapshot.split())
    assert 0 < len(pieces) < remaining_pieces / 3, f"{len(pieces)} yields for ~{remaining_pieces} pieces"
    assert (await saved(p)).content == full


async def test_two_followers_see_the_same_answer(runtime: Runtime, standin: StandIn) -> None:
    standin.config.token_rate = 200
    p = await prepare("[[tokens=60]] [[reasoning]] shared")

    async def follow(run: Run) -> tuple[str, str]:
        text = reasoning = ""
        async for t, r in run.follow(interval=0.01):
            text += t
            reasoning += r
        return text, reasoning

    run = start(runtime, p)
    a, b = await asyncio.wait_for(asyncio.gather(follow(run), follow(run)), timeout=5)
    assert a == b == (expected_reply(p.messages), "Thinking about it")


async def test_follow_after_the_end_returns_everything_once(runtime: Runtime) -> None:
    p = await prepare("quick")
    run = start(runtime, p)
    assert await run.wait_done(timeout=5)
    pieces = [t async for t, _ in run.follow(interval=0)]
    assert "".join(pieces) == expected_reply(p.messages)
    assert len(pieces) == 1


async def test_a_follower_with_wakeups_hears_news_that_brought_no_text(runtime: Runtime, standin: StandIn) -> None:
    """The chat's follower is woken when the exchange is saved, before any text (a slow first token)."""
    standin.config.ttft = 0.5
    p = await prepare("hello")
    run = start(runtime, p)
    follower = run.follow(interval=0, wakeups=True)
    first = asyncio.ensure_future(anext(follower))
    await asyncio.sleep(0.05)
    assert not first.done(), "nothing happened yet"
    run.notify()
    assert await asyncio.wait_for(first, timeout=1) == ("", "")
    text = "".join([t async for t, _ in follower])
    assert text == expected_reply(p.messages)
    assert run.status == MessageStatus.complete


async def test_a_busy_database_does_not_stall_the_stream(runtime: Runtime, standin: StandIn) -> None:
    """Another connection holds the answer's row (SQLite: the write lock) for a second mid-answer: the
    periodic saves wait for it, the text keeps streaming, and the whole answer is saved in the end."""
    standin.config.token_rate = 50
    p = await prepare("[[tokens=100]] a long answer")
    run = start(runtime, p)
    arrivals: list[float] = []

    async def follow() -> None:
        async for text, _ in run.follow(interval=0):
            if text:
                arrivals.append(time.monotonic())

    follower = asyncio.create_task(follow())
    await wait_for(lambda: len(run.text) > 20)
    async with session_scope() as s:  # SQLite: BEGIN IMMEDIATE takes the write lock; PostgreSQL: the row lock
        await s.exec(select(Message).where(Message.id == p.message_id).with_for_update())
        held_from = time.monotonic()
        await asyncio.sleep(1.0)
        held_to = time.monotonic()
    await asyncio.wait_for(follower, timeout=10)
    during = [t for t in arrivals if held_from <= t <= held_to]
    assert len(during) >= 20, "text kept arriving while the database was busy"
    gaps = [b - a for a, b in itertools.pairwise(arrivals) if held_from <= b <= held_to + 0.2]
    assert max(gaps) < 0.4
    assert await run.wait_done(timeout=5)
    final = await saved(p)
    assert (final.status, final.content) == (MessageStatus.complete, expected_reply(p.messages, tokens=100))


async def test_a_run_stopped_before_its_row_is_saved_is_saved_interrupted(runtime: Runtime, standin: StandIn) -> None:
    """Stop can land while the exchange is still being written (slow under load): LocalAI stops at once, and
    the partial answer is saved as interrupted as soon as its row exists."""
    standin.config.token_rate = 20
    p = await prepare("[[tokens=200]] a long answer")
    writer = runtime.answer_writer(committed=False)
    early = runtime.generation.start_early(
        ChatRequest.of_turns(MODEL, p.messages), writer=writer, user_id=p.user_id, sinks=runtime.sinks(writer)
    )
    run = early.run
    await wait_for(lambda: len(run.text) > 10)
    assert await runtime.generation.stop_run(run, wait=False)
    await wait_for(lambda: standin.cancelled == 1)  # the upstream request is closed before anything is saved
    assert not run.finished
    early.bind(message_id=p.message_id, conversation_id=p.conversation_id)
    early.committed()
    assert await run.wait_done(timeout=5)
    final = await saved(p)
    assert (final.status, final.error) == (MessageStatus.interrupted, "stopped")
    assert final.content == run.text and 10 < len(final.content) < len(expected_reply(p.messages, tokens=200))
    assert not await runtime.generation.stop_run(run)


# --------------------------------------------------------------------------- a final save the database refuses


REFUSE_COMPLETE = {  # a constraint-like refusal of the answer's final state (the database says no at once)
    "sqlite": [
        "CREATE TRIGGER refuse_saves BEFORE UPDATE ON messages WHEN NEW.status = 'complete' "
        "BEGIN SELECT RAISE(ABORT, 'saves refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_saves() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'saves refused'; END $$",
        "CREATE TRIGGER refuse_saves BEFORE UPDATE ON messages FOR EACH ROW WHEN (NEW.status = 'complete') "
        "EXECUTE FUNCTION refuse_saves()",
    ],
}
ALLOW_SAVES = {
    "sqlite": ["DROP TRIGGER refuse_saves"],
    "postgresql": ["DROP TRIGGER refuse_saves ON messages", "DROP FUNCTION refuse_saves()"],
}


def dialect(db_url: str) -> str:
    return "sqlite" if db_url.startswith("sqlite") else "postgresql"


async def run_sql(statements: list[str]) -> None:
    async with session_scope() as s:
        for statement in statements:
            await (await s.connection()).exec_driver_sql(statement)


def fast_retries(rt: Runtime, *, retry: float = 1.0, attempt: float = 0.2, mark: float = 10.0) -> None:
    settings = rt.save_settings
    settings.save_retry_seconds, settings.save_lock_wait, settings.mark_lock_wait = retry, attempt, mark


@pytest.mark.parametrize("how", ["locked", "refused"])
async def test_a_final_save_that_keeps_failing_marks_the_answer_save_failed(
    make_runtime: RuntimeFactory, standin: StandIn, db_url: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The database refuses the final save for longer than its retries (another connection holds the row /
    SQLite's write lock, or a trigger refuses the complete state): the run ends as `save_failed` at once (its
    followers keep the whole text), and a last attempt writes that mark with the text."""
    caplog.set_level(logging.DEBUG, logger="rubin_app.generation.sinks")
    rt = await make_runtime(db_flush_seconds=60)  # no periodic save: the final one is the first
    fast_retries(rt, retry=1.0, attempt=0.2)
    p = await prepare("[[tokens=30]] an answer to keep")
    full = expected_reply(p.messages, tokens=30)
    if how == "refused":
        await run_sql(REFUSE_COMPLETE[dialect(db_url)])
    try:
        async with session_scope() as lock:
            if how == "locked":  # SQLite: BEGIN IMMEDIATE takes the write lock; PostgreSQL: the row lock
                await lock.exec(select(Message).where(Message.id == p.message_id).with_for_update())
            run = start(rt, p)
            followed = asyncio.create_task(asyncio.wait_for(_collect(run), timeout=20))
            started = time.monotonic()
            await wait_for(lambda: run.error == "save_failed", timeout=8)
            assert time.monotonic() - started < 4, "the retries are bounded"
            if how == "locked":  # the mark waits for the lock
                assert (await saved_now(p)).status == MessageStatus.streaming
        assert await run.wait_done(timeout=12)
    finally:
        if how == "refused":
            await run_sql(ALLOW_SAVES[dialect(db_url)])
    assert await followed == full  # the tab that followed the run still shows the whole answer
    assert (run.status, run.error, run.text) == (MessageStatus.interrupted, "save_failed", full)
    message = await saved(p)
    assert (message.status, message.error, message.content) == (MessageStatus.interrupted, "save_failed", full)
    assert message.duration_ms is not None
    logged = [r for r in caplog.records if r.name == "rubin_app.generation.sinks"]
    assert any("save_failed" in r.getMessage() and r.levelno >= logging.WARNING for r in logged)
    assert not any(full.strip()[:30] in r.getMessage() for r in logged if r.levelno >= logging.INFO)
    assert rt.generation.active_ids() == []


async def test_a_briefly_refusing_database_gets_the_answer_saved_by_the_retries(
    make_runtime: RuntimeFactory, standin: StandIn, db_url: str
) -> None:
    """The database refuses the final save at once for a moment (shorter than the retries): saved normally."""
    rt = await make_runtime(db_flush_seconds=60)
    fast_retries(rt, retry=5.0, attempt=0.2)
    p = await prepare("[[tokens=30]] an answer to keep")
    await run_sql(REFUSE_COMPLETE[dialect(db_url)])
    try:
        run = start(rt, p)
        await wait_for(lambda: standin.completed == 1)
        await asyncio.sleep(0.4)  # a few attempts fail
        assert not run.finished
    finally:
        await run_sql(ALLOW_SAVES[dialect(db_url)])
    assert await run.wait_done(timeout=8)
    assert (run.status, run.error) == (MessageStatus.complete, "")
    message = await saved(p)
    assert (message.status, message.error, message.content) == (
        MessageStatus.complete, "", expected_reply(p.messages, tokens=30)
    )  # fmt: skip


async def test_a_briefly_locked_database_gets_the_answer_saved(make_runtime: RuntimeFactory, standin: StandIn) -> None:
    """A lock held for longer than one attempt waits, but shorter than the retries: saved normally."""
    rt = await make_runtime(db_flush_seconds=60)
    fast_retries(rt, retry=5.0, attempt=0.2)
    p = await prepare("[[tokens=30]] an answer to keep")
    async with session_scope() as lock:
        await lock.exec(select(Message).where(Message.id == p.message_id).with_for_update())
        run = start(rt, p)
        await wait_for(lambda: standin.completed == 1)
        await asyncio.sleep(0.8)  # several attempts time out on the lock
        assert not run.finished
    assert await run.wait_done(timeout=8)
    message = await saved(p)
    assert (message.status, message.error) == (MessageStatus.complete, "")
    assert message.content == expected_reply(p.messages, tokens=30)


async def _collect(run: Run) -> str:
    return "".join([text async for text, _ in run.follow(interval=0)])


async def saved_now(p: Prepared) -> Message:
    """The row as a reader sees it while a writer holds the lock (read-only sessions never wait)."""
    async with session_scope(read_only=True) as s:
        message = await chats.get_message(session=s, user_id=p.user_id, message_id=p.message_id)
    assert message is not None
    return message
