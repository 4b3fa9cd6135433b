"""A model slow to write titles never holds up the chat (TITLE_MODE=llm, the default).

The stand-in takes `[[title_delay=S]]` seconds longer on title requests only (the title prompt quotes the
question, marker included): the answer is saved complete, the conversation is listed under its provisional
title and the user's next message is admitted (one answer at a time) while the title is still being written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from rubin_app.models import MessageStatus
from rubin_app.services import chat_flow, chats
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime
from rubin_app.services.titles import title_from_text
from tests.fakes.localai_standin import StandIn
from tests.services.helpers import new_user

MODEL = "standin-model"
TITLE_DELAY = 3.0
RuntimeFactory = Callable[..., Awaitable[Runtime]]


def title_requests(standin: StandIn) -> list:
    return [r for r in standin.records if r.title]


async def test_a_slow_title_holds_up_neither_the_answer_nor_the_next_message(
    make_runtime: RuntimeFactory, standin: StandIn
) -> None:
    rt = await make_runtime(title_mode=None, max_concurrent_answers=1)  # TITLE_MODE unset: the default
    assert rt.settings.title_mode == "llm"
    user_id = await new_user()
    question = f"[[reply=Rubies Explained]] [[title_delay={TITLE_DELAY}]] why are rubies red"
    began = time.monotonic()
    started = await chat_flow.send_message(rt, user_id=user_id, conversation_id=None, text=question, model=MODEL)
    cid = started.conversation.id

    # The answer ends on its own time: saved complete, its slot free, while the title is still being written.
    assert await started.run.wait_done(timeout=2)
    assert started.title is not None and not started.title.done()
    async with session_scope(read_only=True) as session:
        saved = await chats.get_message(session=session, user_id=user_id, message_id=started.run.message_id)
        listed = await chats.list_conversations(session=session, user_id=user_id)
    assert saved is not None and (saved.status, saved.content) == (MessageStatus.complete, "Rubies Explained")
    assert [(c.id, c.title) for c in listed] == [(cid, title_from_text(question))]  # listed, provisional title
    await asyncio.sleep(0.2)  # the title request is out
    assert [r.outcome for r in title_requests(standin)] == ["pending"]

    # The next message goes through at once, with MAX_CONCURRENT_ANSWERS=1: the title is no running answer.
    second = await chat_flow.send_message(rt, user_id=user_id, conversation_id=cid, text="and sapphires?", model=MODEL)
    assert second.title is None  # only a new conversation is titled
    assert await second.run.wait_done(timeout=2)
    assert second.run.status == MessageStatus.complete
    assert not started.title.done(), "the second answer had to wait for the title"
    assert time.monotonic() - began < TITLE_DELAY
    # Every follow-up of the first answer that is not the title is over (a tab waits for nothing else).
    assert all(task.done() for task in started.run.after_tasks if task is not started.title)

    # The model's title arrives later and replaces the provisional one.
    assert await asyncio.wait_for(started.title, timeout=TITLE_DELAY + 3) == "Rubies Explained"
    assert time.monotonic() - began >= TITLE_DELAY
    assert [r.outcome for r in title_requests(standin)] == ["completed"]
    async with session_scope(read_only=True) as session:
        conversation = await chats.get_conversation(session=session, user_id=user_id, conversation_id=cid)
    assert conversation is not None and (conversation.title, conversation.title_is_auto) == ("Rubies Explained", True)


async def test_a_title_for_a_chat_gone_or_renamed_meanwhile_is_dropped(
    make_runtime: RuntimeFactory, standin: StandIn
) -> None:
    rt = await make_runtime(title_mode="llm")
    user_id = await new_user()
    renamed = await chat_flow.send_message(
        rt, user_id=user_id, conversation_id=None, text="[[title_delay=1]] first chat", model=MODEL
    )
    deleted = await chat_flow.send_message(
        rt, user_id=user_id, conversation_id=None, text="[[title_delay=1]] second chat", model=MODEL
    )
    assert await renamed.run.wait_done(timeout=2) and await deleted.run.wait_done(timeout=2)
    async with session_scope() as session:
        await chats.update_conversation(
            session=session, user_id=user_id, conversation_id=renamed.conversation.id, title="Mine"
        )
        await chats.delete_conversation(session=session, user_id=user_id, conversation_id=deleted.conversation.id)
    assert renamed.title is not None and deleted.title is not None
    assert await asyncio.wait_for(renamed.title, timeout=5) is None  # nothing to show: the user's title stays
    assert await asyncio.wait_for(deleted.title, timeout=5) is None
    async with session_scope(read_only=True) as session:
        kept = await chats.get_conversation(session=session, user_id=user_id, conversation_id=renamed.conversation.id)
    assert kept is not None and kept.title == "Mine"
