"""Conversations and messages on real SQLite and PostgreSQL databases, one user never sees another's."""

from __future__ import annotations

import pytest
from sqlmodel import select

from rubin_app.models import Conversation, Message, MessageRole, MessageStatus, User
from rubin_app.services import chats
from rubin_app.services.chats import InputError
from tests.factories import make_conversation, make_exchange, make_message, make_user


@pytest.fixture
async def two_users(scope) -> tuple[int, int]:
    async with scope() as s:
        a = await make_user(s, external_id="alice")
        b = await make_user(s, external_id="bob")
        assert a.id is not None and b.id is not None
        return a.id, b.id


# --------------------------------------------------------------------------- users


async def test_local_user_is_created_once(scope) -> None:
    async with scope() as s:
        first = await chats.get_or_create_local_user(session=s)
    async with scope() as s:
        again = await chats.get_or_create_local_user(session=s)
        count = len((await s.exec(select(User))).all())
    assert first.id == again.id
    assert count == 1


# --------------------------------------------------------------------------- conversations


async def test_create_and_list_newest_first(scope, two_users) -> None:
    alice, _ = two_users
    ids = []
    async with scope() as s:
        for title in ("first", "second", "third"):
            ids.append((await chats.create_conversation(session=s, user_id=alice, model="m", title=title)).id)
    async with scope() as s:
        listed = await chats.list_conversations(session=s, user_id=alice)
    assert [c.title for c in listed] == ["third", "second", "first"]

    # a new message moves an old conversation to the top
    async with scope() as s:
        await chats.create_message(
            session=s, user_id=alice, conversation_id=ids[0], role=MessageRole.user, content="hi"
        )
    async with scope() as s:
        listed = await chats.list_conversations(session=s, user_id=alice)
    assert [c.title for c in listed] == ["first", "third", "second"]

    async with scope() as s:
        assert len(await chats.list_conversations(session=s, user_id=alice, limit=2)) == 2


async def test_titles_are_cleaned(scope, two_users) -> None:
    alice, _ = two_users
    async with scope() as s:
        conv = await chats.create_conversation(session=s, user_id=alice, model="m", title="  two\n lines\there  ")
        long = await chats.create_conversation(session=s, user_id=alice, model="m", title="x" * 500)
    assert conv.title == "two lines here"
    assert len(long.title) == chats.TITLE_MAX
    assert long.title.endswith("…")


async def test_filter_by_title_is_case_insensitive(scope, two_users) -> None:
    alice, _ = two_users
    async with scope() as s:
        for title in ("Ruby on Rails", "Python tips", "rubies and SAPPHIRES", "Рубин и сапфир", "Погода"):
            await chats.create_conversation(session=s, user_id=alice, model="m", title=title)
    async with scope() as s:
        found = {c.title for c in await chats.list_conversations(session=s, user_id=alice, query="RUB")}
        assert found == {"Ruby on Rails", "rubies and SAPPHIRES"}
        found = {c.title for c in await chats.list_conversations(session=s, user_id=alice, query=" sapphires ")}
        assert found == {"rubies and SAPPHIRES"}
        found = {c.title for c in await chats.list_conversations(session=s, user_id=alice, query="рубин")}
        assert found == {"Рубин и сапфир"}
        found = {c.title for c in await chats.list_conversations(session=s, user_id=alice, query="САПФИР")}
        assert found == {"Рубин и сапфир"}
        assert len(await chats.list_conversations(session=s, user_id=alice, query="   ")) == 5
        assert await chats.list_conversations(session=s, user_id=alice, query="nothing like this") == []


async def test_filter_treats_like_wildcards_literally(scope, two_users) -> None:
    alice, _ = two_users
    async with scope() as s:
        for title in ("100% sure", "100 percent", "snake_case names", "snakeXcase", "back\\slash", "plain"):
            await chats.create_conversation(session=s, user_id=alice, model="m", title=title)
    async with scope() as s:

        async def titles(query: str) -> set[str]:
            return {c.title for c in await chats.list_conversations(session=s, user_id=alice, query=query)}

        assert await titles("%") == {"100% sure"}
        assert await titles("100%") == {"100% sure"}
        assert await titles("_") == {"snake_case names"}
        assert await titles("e_c") == {"snake_case names"}
        assert await titles("\\") == {"back\\slash"}
        assert await titles("k\\s") == {"back\\slash"}


async def test_rename_and_change_model(scope, two_users) -> None:
    alice, _ = two_users
    async with scope() as s:
        conv = await make_conversation(s, user_id=alice, title="old")
    async with scope() as s:
        renamed = await chats.update_conversation(
            session=s, user_id=alice, conversation_id=conv.id, title="  New name "
        )
        assert renamed is not None
    async with scope() as s:
        got = await chats.get_conversation(session=s, user_id=alice, conversation_id=conv.id)
        assert got is not None
        assert got.title == "New name"
        assert got.title_is_auto is False
        with pytest.raises(InputError) as info:
            await chats.update_conversation(session=s, user_id=alice, conversation_id=conv.id, title="   ")
        assert info.value.code == "empty_title"
    async with scope() as s:
        await chats.update_conversation(session=s, user_id=alice, conversation_id=conv.id, model="standin-small")
    async with scope() as s:
        got = await chats.get_conversation(session=s, user_id=alice, conversation_id=conv.id)
        assert got is not None
        assert (got.title, got.model) == ("New name", "standin-small")


async def test_automatic_title_never_overwrites_a_users_title(scope, two_users) -> None:
    alice, _ = two_users
    async with scope() as s:
        conv = await chats.create_conversation(session=s, user_id=alice, model="m", title="first words")
        await chats.update_conversation(
            session=s, user_id=alice, conversation_id=conv.id, title="Model title", auto_title=True
        )
    async with scope() as s:
        got = await chats.get_conversation(session=s, user_id=alice, conversation_id=conv.id)
        assert got is not None and got.title == "Model title" and got.title_is_auto
        await chats.update_conversation(session=s, user_id=alice, conversation_id=conv.id, title="Mine")
        await chats.update_conversation(
            session=s, user_id=alice, conversation_id=conv.id, title="Auto again", auto_title=True
        )
    async with scope() as s:
        got = await chats.get_conversation(session=s, user_id=alice, conversation_id=conv.id)
        assert got is not None and got.title == "Mine"


async def test_delete_removes_the_conversation_and_its_messages(scope, two_users) -> None:
    alice, _ = two_users
    async with scope() as s:
        conv = await make_conversation(s, user_id=alice)
        keep = await make_conversation(s, user_id=alice, title="kept")
        await make_exchange(s, conversation=conv)
        await make_exchange(s, conversation=keep)
    async with scope() as s:
        assert await chats.delete_conversation(session=s, user_id=alice, conversation_id=conv.id) is True
    async with scope() as s:
        assert await chats.get_conversation(session=s, user_id=alice, conversation_id=conv.id) is None
        left = (await s.exec(select(Message))).all()
        assert {m.conversation_id for m in left} == {keep.id}
        assert len(left) == 2
        assert await chats.delete_conversation(session=s, user_id=alice, conversation_id=conv.id) is False


# --------------------------------------------------------------------------- isolation between users


async def test_another_user_cannot_see_or_touch_a_conversation(scope, two_users) -> None:
    alice, bob = two_users
    async with scope() as s:
        conv = await make_conversation(s, user_id=alice, title="Alice's secret")
        question, answer = await make_exchange(s, conversation=conv, question="my secret", answer="safe")
    assert question.id is not None and answer.id is not None

    async with scope() as s:
        assert await chats.get_conversation(session=s, user_id=bob, conversation_id=conv.id) is None
        assert await chats.list_conversations(session=s, user_id=bob) == []
        assert await chats.list_conversations(session=s, user_id=bob, query="secret") == []
        assert await chats.update_conversation(session=s, user_id=bob, conversation_id=conv.id, title="pwned") is None
        assert await chats.delete_conversation(session=s, user_id=bob, conversation_id=conv.id) is False
        assert await chats.list_messages(session=s, user_id=bob, conversation_id=conv.id) == []
        assert await chats.get_message(session=s, user_id=bob, message_id=question.id) is None
        assert await chats.update_message(session=s, user_id=bob, message_id=answer.id, content="pwned") is None
        removed = await chats.delete_messages_after(session=s, user_id=bob, conversation_id=conv.id, message_id=0)
        assert removed == 0

    async with scope() as s:
        got = await chats.get_conversation(session=s, user_id=alice, conversation_id=conv.id)
        assert got is not None and got.title == "Alice's secret"
        messages = await chats.list_messages(session=s, user_id=alice, conversation_id=conv.id)
        assert [m.content for m in messages] == ["my secret", "safe"]


# --------------------------------------------------------------------------- messages


async def test_messages_come_oldest_first(scope, two_users) -> None:
    alice, _ = two_users
    async with scope() as s:
        conv = await make_conversation(s, user_id=alice)
        for i in range(6):
            role = MessageRole.user if i % 2 == 0 else MessageRole.assistant
            await chats.create_message(session=s, user_id=alice, conversation_id=conv.id, role=role, content=f"m{i}")
    async with scope() as s:
        messages = await chats.list_messages(session=s, user_id=alice, conversation_id=conv.id)
    assert [m.content for m in messages] == [f"m{i}" for i in range(6)]
    assert [m.role for m in messages] == ["user", "assistant"] * 3
    assert all(m.status == MessageStatus.complete for m in messages)


async def test_update_message_saves_fields(scope, two_users) -> None:
    alice, _ = two_users
    async with scope() as s:
        conv = await make_conversation(s, user_id=alice)
        msg = await make_message(
            s, conversation=conv, role=MessageRole.assistant, content="", status=MessageStatus.streaming
        )
    assert msg.id is not None
    async with scope() as s:
        await chats.update_message(
            session=s,
            user_id=alice,
            message_id=msg.id,
            content="Готово ✅",
            status=MessageStatus.complete,
            ttft_ms=12,
            duration_ms=345,
            completion_tokens=7,
        )
    async with scope() as s:
        got = await chats.get_message(session=s, user_id=alice, message_id=msg.id)
    assert got is not None
    assert (got.content, got.status, got.ttft_ms, got.duration_ms, got.completion_tokens) == (
        "Готово ✅",
        MessageStatus.complete,
        12,
        345,
        7,
    )
    assert got.updated_at > msg.updated_at


async def test_delete_messages_after(scope, two_users) -> None:
    alice, _ = two_users
    async with scope() as s:
        conv = await make_conversation(s, user_id=alice)
        other = await make_conversation(s, user_id=alice, title="other")
        q1, _a1 = await make_exchange(s, conversation=conv, question="q1", answer="a1")
        q2, _a2 = await make_exchange(s, conversation=conv, question="q2", answer="a2")
        await make_exchange(s, conversation=other, question="oq", answer="oa")
    assert q2.id is not None and q1.id is not None
    async with scope() as s:
        assert (
            await chats.delete_messages_after(session=s, user_id=alice, conversation_id=conv.id, message_id=q2.id) == 1
        )
    async with scope() as s:
        left = await chats.list_messages(session=s, user_id=alice, conversation_id=conv.id)
        assert [m.content for m in left] == ["q1", "a1", "q2"]
        assert (
            await chats.delete_messages_after(session=s, user_id=alice, conversation_id=conv.id, message_id=q1.id) == 2
        )
    async with scope() as s:
        assert [m.content for m in await chats.list_messages(session=s, user_id=alice, conversation_id=conv.id)] == [
            "q1"
        ]
        others = await chats.list_messages(session=s, user_id=alice, conversation_id=other.id)
        assert [m.content for m in others] == ["oq", "oa"]


def test_check_message_text() -> None:
    assert chats.check_message_text("  hi  ", 10) == "  hi  "
    for empty in ("", "   ", "\n\t"):
        with pytest.raises(InputError) as info:
            chats.check_message_text(empty, 10)
        assert info.value.code == "empty_message"
    with pytest.raises(InputError) as info:
        chats.check_message_text("x" * 11, 10)
    assert info.value.code == "message_too_long"
    assert info.value.params == {"length": 11, "limit": 10}


# --------------------------------------------------------------------------- unfinished answers (recovery scan)


async def test_streaming_answers_lists_every_users_unfinished_answers(scope, two_users) -> None:
    alice, bob = two_users
    async with scope() as s:
        conv_a = await make_conversation(s, user_id=alice)
        conv_b = await make_conversation(s, user_id=bob)
        live_a = await make_message(
            s, conversation=conv_a, role=MessageRole.assistant, status=MessageStatus.streaming, content="li"
        )
        live_b = await make_message(s, conversation=conv_b, role=MessageRole.assistant, status=MessageStatus.streaming)
        await make_message(s, conversation=conv_b, role=MessageRole.assistant, content="done")
        await make_message(
            s, conversation=conv_a, role=MessageRole.assistant, status=MessageStatus.interrupted, content="x"
        )
    async with scope() as s:
        assert sorted(await chats.streaming_answers(session=s)) == sorted([(live_a.id, alice), (live_b.id, bob)])
        assert await chats.answer_owner(session=s, message_id=live_b.id) == bob  # type: ignore[arg-type]
        await chats.update_message(session=s, user_id=bob, message_id=live_b.id, status=MessageStatus.complete)  # type: ignore[arg-type]
    async with scope() as s:
        assert await chats.streaming_answers(session=s) == [(live_a.id, alice)]
        assert await chats.answer_owner(session=s, message_id=live_b.id) is None  # type: ignore[arg-type]


async def test_deleting_a_user_cascades(scope, two_users) -> None:
    """The foreign keys really cascade (SQLite needs PRAGMA foreign_keys=ON for this)."""
    alice, bob = two_users
    async with scope() as s:
        conv = await make_conversation(s, user_id=alice)
        await make_exchange(s, conversation=conv)
        await make_exchange(s, conversation=await make_conversation(s, user_id=bob))
    async with scope() as s:
        user = await s.get(User, alice)
        assert user is not None
        await s.delete(user)
    async with scope() as s:
        convs = (await s.exec(select(Conversation))).all()
        msgs = (await s.exec(select(Message))).all()
    assert {c.user_id for c in convs} == {bob}
    assert {m.user_id for m in msgs} == {bob}
