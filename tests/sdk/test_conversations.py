"""Conversations and answers through the SDK's RubinClient, against a running Rubin and the LocalAI stand-in."""

from __future__ import annotations

from rubin_client import (
    Conversation,
    ConversationDetail,
    Delta,
    Done,
    EventStream,
    Exchange,
    NotFound,
    Started,
)

from tests.fakes.localai_standin import StandIn, expected_reply
from tests.sdk.conftest import Rubin


def reply_to(text: str) -> str:
    """What the stand-in answers to `text` (it reads the last user message only)."""
    return expected_reply([{"role": "user", "content": text}])


def test_a_conversation_from_its_first_streamed_message_to_its_deletion(rubin: Rubin, standin: StandIn) -> None:
    standin.config.token_rate = 50  # a piece every 20 ms: the answer comes in several deltas
    ann = rubin.ann
    with ann.stream(None, "Tell me about rubies") as stream:
        assert isinstance(stream, EventStream)
        events = list(stream)
    assert isinstance(events[0], Started) and isinstance(events[-1], Done)
    assert all(isinstance(e, Delta) for e in events[1:-1]) and len(events) > 3
    started, done = events[0], events[-1]
    text = "".join(e.content for e in events if isinstance(e, Delta))
    assert text == reply_to("Tell me about rubies") == stream.text
    assert (done.status, done.ok, done.error, done.completion_tokens) == ("complete", True, "", 20)
    assert done.prompt_tokens is not None and done.prompt_tokens > 0
    assert (done.conversation_id, done.question_id, done.answer_id) == (
        started.conversation_id, started.question_id, started.answer_id,
    )  # fmt: skip
    cid = started.conversation_id

    detail = ann.conversation(cid)
    assert isinstance(detail, ConversationDetail) and detail.id == cid and not detail.has_older
    assert [(m.id, m.role, m.status) for m in detail.messages] == [
        (started.question_id, "user", "complete"), (started.answer_id, "assistant", "complete"),
    ]  # fmt: skip
    assert detail.messages[1].content == text and detail.messages[1].completion_tokens == 20
    assert detail.created_at.tzinfo is not None

    exchange = ann.send(cid, "And sapphires?")
    assert isinstance(exchange, Exchange) and exchange.conversation_id == cid
    assert exchange.question is not None and exchange.question.content == "And sapphires?"
    assert exchange.answer.status == "complete" and exchange.answer.content == reply_to("And sapphires?")

    renamed = ann.rename(cid, "Gems")
    assert isinstance(renamed, Conversation) and renamed.title == "Gems"
    assert [c.id for c in ann.conversations(q="Gems").data] == [cid]
    ann.delete(cid)
    try:
        ann.conversation(cid)
    except NotFound as exc:
        assert (exc.status, exc.code) == (404, "not_found")
    else:
        raise AssertionError("a deleted conversation was still found")


def test_conversations_are_paged_newest_first_and_filtered_by_title(rubin: Rubin) -> None:
    bob = rubin.bob
    made = [bob.create_conversation(title=title) for title in ("alpha one", "beta", "Alpha two", "gamma", "alpha 3")]
    newest_first = [c.id for c in reversed(made)]

    first = bob.conversations(limit=2)
    assert [c.id for c in first.data] == newest_first[:2]
    assert (first.offset, first.limit, first.has_more, first.next_offset) == (0, 2, True, 2)
    last = bob.conversations(offset=4, limit=2)
    assert [c.id for c in last.data] == newest_first[4:] and not last.has_more and last.next_offset is None
    assert [c.id for c in bob.iter_conversations(page_size=2)] == newest_first

    alphas = bob.conversations(q="alpha")
    assert [c.title for c in alphas.data] == ["alpha 3", "Alpha two", "alpha one"] and not alphas.has_more
    assert [c.title for c in bob.iter_conversations(q="alpha", page_size=1)] == ["alpha 3", "Alpha two", "alpha one"]
    assert bob.conversations(q="no such title").data == []
    assert rubin.ann.conversations().data == []  # ann sees none of bob's


def test_messages_are_paged_back_with_before(rubin: Rubin) -> None:
    bob = rubin.bob
    cid = bob.send(None, "one").conversation_id
    for text in ("two", "three"):
        assert bob.send(cid, text).answer.status == "complete"

    newest = bob.conversation(cid, limit=4)
    assert [m.content for m in newest.messages if m.role == "user"] == ["two", "three"] and newest.has_older
    older = bob.conversation(cid, before=newest.messages[0].id, limit=4)
    assert [(m.role, m.content) for m in older.messages] == [("user", "one"), ("assistant", reply_to("one"))]
    assert not older.has_older
    assert [m.id for m in older.messages + newest.messages] == [m.id for m in bob.conversation(cid).messages]


def test_stop_ends_a_streaming_answer_and_keeps_its_text(rubin: Rubin, standin: StandIn) -> None:
    standin.config.token_rate = 20  # a piece every 50 ms: time to stop it
    ann = rubin.ann
    with ann.stream(None, "[[tokens=400]] a long answer") as stream:
        deltas = 0
        for event in stream:
            if isinstance(event, Delta):
                deltas += 1
                if deltas == 3:
                    assert stream.conversation_id is not None
                    assert ann.stop(stream.conversation_id) is True
        done = stream.done
    assert done is not None and (done.status, done.error, done.ok) == ("interrupted", "stopped", False)
    assert stream.conversation_id is not None
    answer = ann.conversation(stream.conversation_id).messages[-1]
    assert answer.status == "interrupted" and answer.content == stream.text and stream.text
    assert ann.stop(stream.conversation_id) is False  # nothing runs any more


def test_regenerate_replaces_the_last_answer(rubin: Rubin) -> None:
    ann = rubin.ann
    first = ann.send(None, "[[reasoning]] Tell me about opals")
    cid = first.conversation_id
    assert first.answer.reasoning == "Thinking about it"

    again = ann.regenerate(cid)
    assert again.answer.status == "complete" and again.answer.content == first.answer.content
    assert again.answer.id != first.answer.id

    stream = ann.stream_regenerate(cid)
    done = stream.until_done()
    assert done.ok and stream.text == first.answer.content and stream.reasoning == "Thinking about it"
    answers = [m for m in ann.conversation(cid).messages if m.role == "assistant"]
    assert [m.id for m in answers] == [done.answer_id]
