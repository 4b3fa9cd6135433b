"""The memory step after a chat answer (services/memory_step.py) through the real chat flow: a message about the
user makes the chat's model propose facts, they are saved and noted on the answer, Undo forgets them and drops the
note; a message that says nothing about its writer costs no extra model call; a temporary chat never gets here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rubin_app.knowledge import citations
from rubin_app.memory import service as memory
from rubin_app.models import Message
from rubin_app.services import chat_flow, memory_step, temporary_chat
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime
from tests.fakes.localai_standin import StandIn
from tests.services.helpers import new_user

MODEL = "standin-model"


async def _memories(user_id: int) -> list[str]:
    async with session_scope() as session:
        return [m.text for m in await memory.list_memories(session=session, user_id=user_id)]


async def test_an_answer_about_the_user_adds_a_memory_noted_on_it_and_undo_forgets_it(
    runtime: Runtime, standin: StandIn
) -> None:
    user_id = await new_user()
    # The stand-in answers both the chat and the proposal with the marker's text: a JSON list of facts.
    started = await chat_flow.send_message(
        runtime, user_id=user_id, conversation_id=None, model=MODEL,
        text='My dog is called Rex [[reply=["Has a dog called Rex"] ]]',
    )  # fmt: skip
    assert started.memory is not None
    notes = await started.memory
    assert [n["text"] for n in notes] == ["Has a dog called Rex"]
    assert await _memories(user_id) == ["Has a dog called Rex"]
    answer_id = started.messages[1].id
    assert answer_id is not None
    async with session_scope() as session:
        saved = await session.get(Message, answer_id)
    assert saved is not None and citations.load(saved.annotations)[1] == notes  # the note survives a reload

    memory_id = int(str(notes[0]["id"]))
    assert await memory_step.undo(user_id=user_id, message_id=answer_id, memory_id=memory_id)
    assert await _memories(user_id) == []
    async with session_scope() as session:
        saved = await session.get(Message, answer_id)
    assert saved is not None and citations.load(saved.annotations) == ([], [])
    other = await new_user()  # another user's Undo with the same ids does nothing
    assert not await memory_step.undo(user_id=other, message_id=answer_id, memory_id=memory_id)


async def test_a_message_not_about_the_user_costs_no_extra_model_call(runtime: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    started = await chat_flow.send_message(
        runtime, user_id=user_id, conversation_id=None, text="Why is the sky blue?", model=MODEL
    )
    assert started.memory is not None and await started.memory == []
    assert standin.requests == 1  # the answer only
    assert await _memories(user_id) == []


async def test_a_temporary_chat_proposes_no_memory(
    make_runtime: Callable[..., Awaitable[Runtime]], standin: StandIn
) -> None:
    rt = await make_runtime(memory_auto="always")
    user_id = await new_user()
    run = await temporary_chat.send(rt, user_id=user_id, history=[], text="My name is Anna", model=MODEL)
    assert await run.wait_done(timeout=5)
    assert standin.requests == 1 and await _memories(user_id) == []
