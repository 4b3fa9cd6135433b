"""Bad text in, clear errors out, nothing lost: titles, messages, edits and model answers on SQLite and PostgreSQL.

A NUL cannot be stored by PostgreSQL and a lone surrogate (which a websocket JSON frame can carry) by
neither database: a user's message with one is refused with `bad_characters` before anything is saved
or asked; a model's answer with one is saved with U+FFFD in its place. Titles lose invisible and
control characters (bidi overrides, zero-width spaces, NUL) but keep the joiners emoji and Persian need.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from rubin_app.models import MessageRole, MessageStatus
from rubin_app.services import chat_flow, chats
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime
from rubin_app.services.titles import title_from_text
from tests.factories import make_conversation, make_user
from tests.fakes.localai_standin import StandIn
from tests.services.helpers import counts, history, new_user

MODEL = "standin-model"
RuntimeFactory = Callable[..., Awaitable[Runtime]]
BIDI_AND_INVISIBLE = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\ufeff\u2060\u00ad\u061c\x00\x1b"
UNSTORABLE = {
    "nul": "before\x00after",
    "lone high surrogate": "broken \ud83d emoji",
    "lone low surrogate": "\ude00 broken",
    "only a surrogate": "\ud800",
}


async def title_of(user_id: int, conversation_id: str, open_scope: Callable = session_scope) -> str:
    async with open_scope() as s:
        conversation = await chats.get_conversation(session=s, user_id=user_id, conversation_id=conversation_id)
    assert conversation is not None
    return conversation.title


async def finish(started: chat_flow.Started) -> None:
    """Wait for the answer and the work that follows it (the automatic title)."""
    assert await started.run.wait_done(timeout=5)
    if started.run.after_tasks:
        await asyncio.wait_for(asyncio.gather(*started.run.after_tasks), timeout=5)


# --------------------------------------------------------------------------- titles


async def test_titles_lose_bidi_controls_zero_width_characters_and_nul_but_keep_joiners(scope) -> None:
    scotland = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    kept = f"👩\u200d💻 می\u200cخواهم {scotland} Рубин 日本"
    async with scope() as s:
        user = await make_user(s)
        assert user.id is not None
        spoofed = await chats.create_conversation(
            session=s, user_id=user.id, model="m", title=f"invoice{BIDI_AND_INVISIBLE}fdp.exe  \u200b second\x00word"
        )
        joined = await chats.create_conversation(session=s, user_id=user.id, model="m", title=f"\u200b{kept}\u202e")
    assert await title_of(user.id, spoofed.id, scope) == "invoicefdp.exe secondword"
    # the joiners emoji (U+200D) and Persian or Indic scripts (U+200C) need stay, and so does a subdivision flag
    assert await title_of(user.id, joined.id, scope) == kept


async def test_a_stray_emoji_tag_is_dropped_from_a_title(scope) -> None:
    async with scope() as s:
        user = await make_user(s)
        assert user.id is not None
        conversation = await chats.create_conversation(
            session=s, user_id=user.id, model="m", title="hidden\U000e0069\U000e0067\U000e006e text"
        )
    assert await title_of(user.id, conversation.id, scope) == "hidden text"


async def test_rename_strips_invisible_characters_and_refuses_a_title_of_nothing_visible(scope) -> None:
    async with scope() as s:
        user = await make_user(s)
        assert user.id is not None
        conversation = await make_conversation(s, user_id=user.id, title="old")
    async with scope() as s:
        await chats.update_conversation(
            session=s, user_id=user.id, conversation_id=conversation.id, title="\u202eNew\u200b name\ud800\x00"
        )
    assert await title_of(user.id, conversation.id, scope) == "New name"
    with pytest.raises(InputError) as info:
        async with scope() as s:
            await chats.update_conversation(
                session=s, user_id=user.id, conversation_id=conversation.id, title="\u200b\u202e\ufeff \x00"
            )
    assert info.value.code == "empty_title"
    assert await title_of(user.id, conversation.id, scope) == "New name"


async def test_a_title_the_model_writes_is_cleaned(make_runtime: RuntimeFactory, standin: StandIn) -> None:
    rt = await make_runtime(title_mode="llm")
    user_id = await new_user()
    text = r"[[reply_json=\u202eRubies\u200b explained\u2066\u0000]] tell me"
    started = await chat_flow.send_message(rt, user_id=user_id, conversation_id=None, text=text, model=MODEL)
    await finish(started)
    assert standin.requests == 2  # the answer, then the title
    assert await title_of(user_id, started.conversation.id) == "Rubies explained"


async def test_a_model_title_of_invisible_characters_keeps_the_first_title(
    make_runtime: RuntimeFactory, standin: StandIn
) -> None:
    rt = await make_runtime(title_mode="llm")
    user_id = await new_user()
    text = r"[[reply_json=\u200b\u202e\u200b]] tell me"
    started = await chat_flow.send_message(rt, user_id=user_id, conversation_id=None, text=text, model=MODEL)
    await finish(started)
    assert standin.requests == 2
    assert await title_of(user_id, started.conversation.id) == title_from_text(text)


# --------------------------------------------------------------------------- messages a user sends


@pytest.mark.parametrize("text", UNSTORABLE.values(), ids=UNSTORABLE.keys())
async def test_a_message_that_cannot_be_saved_is_refused_up_front(
    runtime: Runtime, standin: StandIn, text: str
) -> None:
    user_id = await new_user()
    async with session_scope() as s:
        kept = await make_conversation(s, user_id=user_id, title="kept")
    before = await counts()

    for conversation_id in (None, kept.id):
        with pytest.raises(InputError) as info:
            await chat_flow.send_message(
                runtime, user_id=user_id, conversation_id=conversation_id, text=text, model=MODEL
            )
        assert info.value.code == "bad_characters"

    assert await counts() == before  # nothing saved, nothing half-saved
    assert standin.requests == 0  # LocalAI was not asked
    assert await title_of(user_id, kept.id) == "kept"


@pytest.mark.parametrize("text", UNSTORABLE.values(), ids=UNSTORABLE.keys())
async def test_an_edit_that_cannot_be_saved_is_refused_and_the_exchange_is_kept(
    runtime: Runtime, standin: StandIn, text: str
) -> None:
    user_id = await new_user()
    started = await chat_flow.send_message(
        runtime, user_id=user_id, conversation_id=None, text="[[reply=Fine.]] first", model=MODEL
    )
    await finish(started)
    question, _ = started.messages
    assert question.id is not None
    standin.reset()

    with pytest.raises(InputError) as info:
        await chat_flow.edit_and_resend(
            runtime, user_id=user_id, conversation_id=started.conversation.id, message_id=question.id, text=text
        )
    assert info.value.code == "bad_characters"

    saved = await history(user_id, started.conversation.id)
    assert [(m.role, m.content, m.status) for m in saved] == [
        (MessageRole.user, "[[reply=Fine.]] first", MessageStatus.complete),
        (MessageRole.assistant, "Fine.", MessageStatus.complete),
    ]
    assert standin.requests == 0


async def test_other_control_characters_are_removed_from_a_message(runtime: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    pasted = "\x1b[31mred\x1b[0m\x07 page one\x0cpage two\x0bline\tcell\r\nend\x7f\x85next\x01"
    cleaned = "[31mred[0m page one\npage two\nline\tcell\r\nend\nnext"
    started = await chat_flow.send_message(runtime, user_id=user_id, conversation_id=None, text=pasted, model=MODEL)
    await finish(started)

    saved = await history(user_id, started.conversation.id)
    assert saved[0].content == cleaned
    assert standin.last_request_json is not None
    assert standin.last_request_json["messages"][-1]["content"] == cleaned  # the model reads what is saved
    assert saved[1].status == MessageStatus.complete


async def test_a_surrogate_pair_is_saved_as_the_character_it_encodes(runtime: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    started = await chat_flow.send_message(
        runtime, user_id=user_id, conversation_id=None, text="smile \ud83d\ude00 please", model=MODEL
    )
    await finish(started)
    saved = await history(user_id, started.conversation.id)
    assert saved[0].content == "smile 😀 please"


async def test_an_edit_loses_control_characters_too(runtime: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    started = await chat_flow.send_message(runtime, user_id=user_id, conversation_id=None, text="first", model=MODEL)
    await finish(started)
    question, _ = started.messages
    assert question.id is not None

    edited = await chat_flow.edit_and_resend(
        runtime, user_id=user_id, conversation_id=started.conversation.id, message_id=question.id, text="sec\x08ond\x1f"
    )
    await finish(edited)
    saved = await history(user_id, started.conversation.id)
    assert saved[0].content == "second"
    assert saved[1].status == MessageStatus.complete


# --------------------------------------------------------------------------- what the model sends back


async def test_a_nul_or_lone_surrogate_in_the_answer_is_saved_as_a_replacement_character(
    runtime: Runtime, standin: StandIn
) -> None:
    user_id = await new_user()
    text = r"[[reply_json=ok \u0000 then \ud800 and \udc00 end]]"
    started = await chat_flow.send_message(runtime, user_id=user_id, conversation_id=None, text=text, model=MODEL)
    await finish(started)

    _, answer = await history(user_id, started.conversation.id)
    assert answer.status == MessageStatus.complete
    assert answer.content == "ok \ufffd then \ufffd and \ufffd end"
    assert answer.error == ""
