"""Paged messages (a long chat opens on its newest page, older pages load on scroll), on real SQLite and
PostgreSQL: pages are the newest messages before a given one, oldest first, and only ever the user's own."""

from __future__ import annotations

import pytest

from rubin_app.models import Message, MessageRole
from rubin_app.services import chats
from tests.factories import make_conversation, make_exchange, make_user


@pytest.fixture
async def long_chat(scope) -> tuple[int, int, str, list[Message]]:
    """Alice's chat of 60 messages (q0, a0, ... q29, a29), Bob, and another chat of Alice's in between."""
    async with scope() as s:
        alice = await make_user(s, external_id="alice")
        bob = await make_user(s, external_id="bob")
        conv = await make_conversation(s, user_id=alice.id, title="long")
        other = await make_conversation(s, user_id=alice.id, title="other")
        made: list[Message] = []
        for i in range(30):
            made += await make_exchange(s, conversation=conv, question=f"q{i}", answer=f"a{i}")
            if i % 10 == 0:  # ids of another chat interleave: a page must skip them
                await make_exchange(s, conversation=other, question="elsewhere", answer="elsewhere")
    return alice.id, bob.id, conv.id, made


def contents(messages) -> list[str]:
    return [m.content for m in messages]


async def test_newest_page_comes_oldest_first(scope, long_chat) -> None:
    alice, _, cid, made = long_chat
    async with scope() as s:
        page = await chats.list_messages(session=s, user_id=alice, conversation_id=cid, limit=10)
    assert contents(page) == contents(made[-10:])
    assert [m.id for m in page] == sorted(m.id for m in page)


async def test_older_pages_walk_back_to_the_first_message_without_gaps(scope, long_chat) -> None:
    alice, _, cid, made = long_chat
    seen: list[Message] = []
    before = None
    async with scope() as s:
        while True:
            page = await chats.list_messages(session=s, user_id=alice, conversation_id=cid, before_id=before, limit=8)
            if not page:
                break
            seen = list(page) + seen
            before = page[0].id
    assert contents(seen) == contents(made)  # every message once, in order, nothing of the other chat
    assert len(made) == 60


async def test_before_id_alone_and_no_arguments(scope, long_chat) -> None:
    alice, _, cid, made = long_chat
    async with scope() as s:
        everything = await chats.list_messages(session=s, user_id=alice, conversation_id=cid)
        older = await chats.list_messages(session=s, user_id=alice, conversation_id=cid, before_id=made[4].id)
        last_page = await chats.list_messages(
            session=s, user_id=alice, conversation_id=cid, before_id=made[4].id, limit=10
        )
        none = await chats.list_messages(session=s, user_id=alice, conversation_id=cid, before_id=made[0].id, limit=10)
        zero = await chats.list_messages(session=s, user_id=alice, conversation_id=cid, limit=0)
    assert contents(everything) == contents(made)
    assert contents(older) == ["q0", "a0", "q1", "a1"]
    assert contents(last_page) == ["q0", "a0", "q1", "a1"]  # a short last page
    assert list(none) == [] and list(zero) == []


async def test_pages_of_another_users_chat_are_empty(scope, long_chat) -> None:
    alice, bob, cid, made = long_chat
    async with scope() as s:
        assert list(await chats.list_messages(session=s, user_id=bob, conversation_id=cid, limit=10)) == []
        page = await chats.list_messages(session=s, user_id=bob, conversation_id=cid, before_id=made[-1].id, limit=10)
        assert list(page) == []
        # A row of Bob's carrying Alice's chat id (forged): the user filter keeps the two apart both ways.
        s.add(Message(conversation_id=cid, user_id=bob, role=MessageRole.user, content="bob's row"))
    async with scope() as s:
        bobs = await chats.list_messages(session=s, user_id=bob, conversation_id=cid, limit=10)
        alices = await chats.list_messages(session=s, user_id=alice, conversation_id=cid, limit=10)
        older = await chats.list_messages(
            session=s, user_id=alice, conversation_id=cid, before_id=made[-1].id, limit=100
        )
    assert contents(bobs) == ["bob's row"]
    assert contents(alices) == contents(made[-10:])
    assert contents(older) == contents(made[:-1])


async def test_turns_are_the_newest_messages_of_the_users_own_chat(scope, long_chat) -> None:
    """What a model's context is built from (one light query on the send path): same pages as the
    messages, with role and status, and None for a chat that is not the user's."""
    alice, bob, cid, made = long_chat
    async with scope() as s:
        newest = await chats.list_turns(session=s, user_id=alice, conversation_id=cid, limit=10)
        assert newest is not None
        older = await chats.list_turns(session=s, user_id=alice, conversation_id=cid, before_id=newest[0].id, limit=10)
        assert await chats.list_turns(session=s, user_id=bob, conversation_id=cid, limit=10) is None
        assert await chats.list_turns(session=s, user_id=alice, conversation_id="no-such-chat", limit=10) is None
        empty = await make_conversation(s, user_id=alice, title="empty")
        assert await chats.list_turns(session=s, user_id=alice, conversation_id=empty.id, limit=10) == []
    assert older is not None
    assert contents(newest) == contents(made[-10:])
    assert contents(older) == contents(made[-20:-10])
    assert [(t.id, t.role, t.status) for t in newest] == [(m.id, m.role, m.status) for m in made[-10:]]
    assert {t.role for t in newest} == {MessageRole.user, MessageRole.assistant}
