"""A send repeated after a reconnect (the page never learned whether the first was saved) is saved once:
services/send_keys.py, on SQLite and PostgreSQL, against the stand-in."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import col, func, select

from rubin_app.models import Conversation, Message, MessageRole
from rubin_app.services import chat_flow, send_keys
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime
from tests.services.helpers import history, new_user

MODEL = "standin-model"
KEY = "3f0b6c1e-7a41-4d5e-9c2b-0d6f1a2b3c4d"


async def questions(user_id: int) -> list[str]:
    async with session_scope(read_only=True) as session:
        asked = select(Message).where(Message.user_id == user_id, Message.role == MessageRole.user)
        rows = await session.exec(asked.order_by(col(Message.id)))  # whole rows: the vault opens their content
        return [m.content for m in rows.all()]


async def chats_of(user_id: int) -> int:
    async with session_scope(read_only=True) as session:
        return (await session.exec(select(func.count()).where(col(Conversation.user_id) == user_id))).one()


async def test_a_send_repeated_with_its_key_after_it_was_saved_is_refused_and_names_its_chat(runtime: Runtime) -> None:
    user_id = await new_user()
    first = await chat_flow.send_message(
        runtime, user_id=user_id, conversation_id=None, text="Сохранится один раз 🙂", model=MODEL, send_key=KEY
    )
    assert await first.run.wait_done(timeout=5)

    with pytest.raises(send_keys.AlreadySent) as caught:  # the page on "/" still: it would make a second chat
        await chat_flow.send_message(
            runtime, user_id=user_id, conversation_id=None, text="Сохранится один раз 🙂", model=MODEL, send_key=KEY
        )
    assert caught.value.conversation_id == first.conversation.id
    assert await questions(user_id) == ["Сохранится один раз 🙂"]
    assert await chats_of(user_id) == 1
    saved = await history(user_id, first.conversation.id)
    assert [m.role for m in saved] == [MessageRole.user, MessageRole.assistant]  # no empty answer left behind


async def test_two_sends_with_one_key_at_once_save_one_exchange_and_free_the_losers_slot(runtime: Runtime) -> None:
    user_id = await new_user()
    sends = [
        chat_flow.send_message(runtime, user_id=user_id, conversation_id=None, text="twice", model=MODEL, send_key=KEY)
        for _ in range(2)
    ]
    results = await asyncio.gather(*sends, return_exceptions=True)
    started = [r for r in results if isinstance(r, chat_flow.Started)]
    refused = [r for r in results if isinstance(r, send_keys.AlreadySent)]
    assert len(started) == 1 and len(refused) == 1, results
    assert refused[0].conversation_id == started[0].conversation.id
    assert await started[0].run.wait_done(timeout=5)
    assert await questions(user_id) == ["twice"] and await chats_of(user_id) == 1
    # The refused send's run was discarded and its concurrency slot freed: the next sends are not limited by it.
    again = await chat_flow.send_message(
        runtime, user_id=user_id, conversation_id=started[0].conversation.id, text="next", model=MODEL
    )
    assert await again.run.wait_done(timeout=5)
    assert await questions(user_id) == ["twice", "next"]


async def test_keys_are_per_user_and_sends_without_a_key_are_never_refused(runtime: Runtime) -> None:
    ada, bob = await new_user(), await new_user()
    mine = await chat_flow.send_message(runtime, user_id=ada, conversation_id=None, text="a", model=MODEL, send_key=KEY)
    theirs = await chat_flow.send_message(
        runtime, user_id=bob, conversation_id=None, text="b", model=MODEL, send_key=KEY
    )
    chat = theirs.conversation.id
    plain = [await chat_flow.send_message(runtime, user_id=bob, conversation_id=chat, text="c", model=MODEL)]
    plain.append(await chat_flow.send_message(runtime, user_id=bob, conversation_id=chat, text="c", model=MODEL))
    for started in (mine, theirs, *plain):
        assert await started.run.wait_done(timeout=5)
    assert theirs.conversation.id != mine.conversation.id  # bob's send never learns of ada's chat
    assert await questions(ada) == ["a"] and await questions(bob) == ["b", "c", "c"]


def test_only_well_formed_keys_are_used() -> None:
    assert send_keys.clean(KEY) == KEY
    assert send_keys.clean("abc_DEF-12345678") == "abc_DEF-12345678"
    for bad in (None, 7, "", "short", "x" * 65, "has space 12345", "ключ-по-русски", "a;DROP TABLE--x"):
        assert send_keys.clean(bad) is None
