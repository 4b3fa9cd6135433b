"""Chat use cases end to end: real database, real HTTP to the stand-in, answers generated server-side."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from rubin_app.models import Conversation, MessageRole, MessageStatus
from rubin_app.services import chat_flow, chats, titles
from rubin_app.services.chats import InputError
from rubin_app.services.context import estimate_tokens
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime
from rubin_app.services.titles import title_from_text
from tests.factories import make_conversation, make_exchange, make_user
from tests.fakes.localai_standin import StandIn, expected_reply
from tests.services.helpers import counts, history, new_user

MODEL = "standin-model"
RuntimeFactory = Callable[..., Awaitable[Runtime]]


async def conversation(user_id: int, conversation_id: str) -> Conversation:
    async with session_scope() as s:
        conv = await chats.get_conversation(session=s, user_id=user_id, conversation_id=conversation_id)
    assert conv is not None
    return conv


async def finish(started: chat_flow.Started) -> None:
    """Wait for the answer and the work that follows it (the automatic title)."""
    assert await started.run.wait_done(timeout=5)
    if started.run.after_tasks:
        await asyncio.wait_for(asyncio.gather(*started.run.after_tasks), timeout=5)


def sent_messages(standin: StandIn) -> list[dict[str, str]]:
    assert standin.last_request_json is not None
    return standin.last_request_json["messages"]


# --------------------------------------------------------------------------- sending


async def test_send_creates_the_conversation_and_saves_the_answer(runtime: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    started = await chat_flow.send_message(
        runtime, user_id=user_id, conversation_id=None, text="Hello, Rubin!", model=MODEL
    )

    question, answer = started.messages
    assert (question.role, question.content) == (MessageRole.user, "Hello, Rubin!")
    assert (answer.role, answer.status, answer.model) == (MessageRole.assistant, MessageStatus.streaming, MODEL)
    assert started.conversation.model == MODEL

    await finish(started)
    saved = await history(user_id, started.conversation.id)
    assert [m.role for m in saved] == [MessageRole.user, MessageRole.assistant]
    sent = sent_messages(standin)
    assert saved[1].status == MessageStatus.complete
    assert saved[1].content == expected_reply(sent)
    assert saved[1].ttft_ms is not None and saved[1].duration_ms is not None
    assert sent[0] == {"role": "system", "content": runtime.settings.system_prompt}
    assert sent[1:] == [{"role": "user", "content": "Hello, Rubin!"}]
    assert standin.requests == 1  # no title request in first_message mode


async def test_second_message_continues_the_conversation(runtime: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    first = await chat_flow.send_message(runtime, user_id=user_id, conversation_id=None, text="one", model=MODEL)
    await finish(first)
    second = await chat_flow.send_message(
        runtime, user_id=user_id, conversation_id=first.conversation.id, text="two", model="standin-small"
    )
    await finish(second)
    assert second.conversation.id == first.conversation.id
    saved = await history(user_id, first.conversation.id)
    assert [m.content for m in saved[::2]] == ["one", "two"]
    assert all(m.status == MessageStatus.complete for m in saved)
    assert [m["content"] for m in sent_messages(standin)[1:]] == ["one", saved[1].content, "two"]
    assert standin.last_request_json is not None and standin.last_request_json["model"] == "standin-small"
    assert (await conversation(user_id, first.conversation.id)).model == "standin-small"
    async with session_scope() as s:
        assert len(await chats.list_conversations(session=s, user_id=user_id)) == 1


async def test_empty_model_picks_the_configured_default(make_runtime: RuntimeFactory, standin: StandIn) -> None:
    rt = await make_runtime(default_model="standin-small")
    user_id = await new_user()
    started = await chat_flow.send_message(rt, user_id=user_id, conversation_id=None, text="hi", model="")
    await finish(started)
    assert started.conversation.model == "standin-small"
    assert standin.last_request_json is not None and standin.last_request_json["model"] == "standin-small"


@pytest.mark.parametrize(
    ("text", "code"),
    [("", "empty_message"), ("   \n\t ", "empty_message"), ("x" * 101, "message_too_long")],
)
async def test_invalid_message_saves_nothing(
    make_runtime: RuntimeFactory, standin: StandIn, text: str, code: str
) -> None:
    rt = await make_runtime(max_message_chars=100)
    user_id = await new_user()
    with pytest.raises(InputError) as info:
        await chat_flow.send_message(rt, user_id=user_id, conversation_id=None, text=text, model=MODEL)
    assert info.value.code == code
    assert await counts() == (0, 0)
    assert standin.requests == 0


async def test_message_at_the_limit_is_accepted(make_runtime: RuntimeFactory) -> None:
    rt = await make_runtime(max_message_chars=100)
    user_id = await new_user()
    started = await chat_flow.send_message(rt, user_id=user_id, conversation_id=None, text="y" * 100, model=MODEL)
    await finish(started)
    assert await counts() == (1, 2)


async def test_unknown_model_saves_nothing(runtime: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    with pytest.raises(InputError) as info:
        await chat_flow.send_message(runtime, user_id=user_id, conversation_id=None, text="hi", model="gpt-17")
    assert info.value.code == "unknown_model"
    assert info.value.params == {"model": "gpt-17"}
    assert await counts() == (0, 0)
    assert standin.requests == 0


async def test_model_added_on_the_server_is_found_by_refreshing_the_list(runtime: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    assert await runtime.catalog.get() == ["standin-model", "standin-small"]
    standin.config.models = ["standin-model", "standin-small", "fresh-model"]
    started = await chat_flow.send_message(
        runtime, user_id=user_id, conversation_id=None, text="hi", model="fresh-model"
    )
    await finish(started)
    assert started.conversation.model == "fresh-model"


async def test_no_models_on_the_server(runtime: Runtime, standin: StandIn) -> None:
    standin.config.models = []
    user_id = await new_user()
    with pytest.raises(InputError) as info:
        await chat_flow.send_message(runtime, user_id=user_id, conversation_id=None, text="hi", model="")
    assert info.value.code == "no_model"
    assert await counts() == (0, 0)


async def test_another_users_conversation_is_not_found(runtime: Runtime, standin: StandIn) -> None:
    async with session_scope() as s:
        other = await make_user(s)
        assert other.id is not None
        theirs = await make_conversation(s, user_id=other.id)
        await make_exchange(s, conversation=theirs)
    me = await new_user()
    for call in (
        chat_flow.send_message(runtime, user_id=me, conversation_id=theirs.id, text="let me in", model=MODEL),
        chat_flow.regenerate(runtime, user_id=me, conversation_id=theirs.id),
    ):
        with pytest.raises(InputError) as info:
            await call
        assert info.value.code == "conversation_not_found"
    assert await counts() == (1, 2)
    assert standin.requests == 0


# --------------------------------------------------------------------------- regenerate and edit


async def test_regenerate_replaces_the_last_answer(runtime: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    first = await chat_flow.send_message(
        runtime, user_id=user_id, conversation_id=None, text="Tell a joke", model=MODEL
    )
    await finish(first)
    old_answer = first.messages[1]

    again = await chat_flow.regenerate(
        runtime, user_id=user_id, conversation_id=first.conversation.id, model="standin-small"
    )
    await finish(again)
    saved = await history(user_id, first.conversation.id)
    assert [m.role for m in saved] == [MessageRole.user, MessageRole.assistant]
    assert saved[0].id == first.messages[0].id
    # a new row (SQLite may reuse the deleted row's id, so compare creation times)
    assert saved[1].created_at > old_answer.created_at
    assert (saved[1].status, saved[1].model) == (MessageStatus.complete, "standin-small")
    assert saved[1].content == expected_reply(sent_messages(standin))
    assert sent_messages(standin)[1:] == [{"role": "user", "content": "Tell a joke"}]
    assert (await conversation(user_id, first.conversation.id)).model == "standin-small"


async def test_regenerate_while_streaming_stops_the_old_answer(runtime: Runtime, standin: StandIn) -> None:
    standin.config.token_rate = 30
    standin.config.tokens = 200
    user_id = await new_user()
    first = await chat_flow.send_message(runtime, user_id=user_id, conversation_id=None, text="slow one", model=MODEL)
    while not first.run.text:
        await asyncio.sleep(0.01)
    standin.config.token_rate = 0
    again = await chat_flow.regenerate(runtime, user_id=user_id, conversation_id=first.conversation.id)
    assert first.run.finished and first.run.error == "stopped"
    await finish(again)
    saved = await history(user_id, first.conversation.id)
    assert [m.status for m in saved] == [MessageStatus.complete, MessageStatus.complete]
    assert saved[1].id == again.run.message_id
    assert standin.cancelled == 1


async def test_retry_after_a_failed_answer(runtime: Runtime, standin: StandIn) -> None:
    standin.config.fault = "http500"
    user_id = await new_user()
    first = await chat_flow.send_message(runtime, user_id=user_id, conversation_id=None, text="hi", model=MODEL)
    await finish(first)
    assert (await history(user_id, first.conversation.id))[1].status == MessageStatus.error

    standin.config.fault = "none"
    again = await chat_flow.regenerate(runtime, user_id=user_id, conversation_id=first.conversation.id)
    await finish(again)
    saved = await history(user_id, first.conversation.id)
    assert [m.status for m in saved] == [MessageStatus.complete, MessageStatus.complete]
    assert saved[1].content


async def test_edit_and_resend_changes_the_question_and_replaces_the_answer(runtime: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    first = await chat_flow.send_message(runtime, user_id=user_id, conversation_id=None, text="first", model=MODEL)
    await finish(first)
    second = await chat_flow.send_message(
        runtime, user_id=user_id, conversation_id=first.conversation.id, text="Whats 2+2", model=MODEL
    )
    await finish(second)
    question, old_answer = second.messages
    assert question.id is not None

    edited = await chat_flow.edit_and_resend(
        runtime, user_id=user_id, conversation_id=first.conversation.id, message_id=question.id, text="What's 2+2?"
    )
    await finish(edited)
    saved = await history(user_id, first.conversation.id)
    assert len(saved) == 4
    assert saved[2].id == question.id
    assert saved[2].content == "What's 2+2?"
    assert saved[3].created_at > old_answer.created_at  # the old answer row is gone (its id may be reused on SQLite)
    assert saved[3].status == MessageStatus.complete
    assert saved[3].content == expected_reply([{"role": "user", "content": "What's 2+2?"}])
    assert sent_messages(standin)[-1] == {"role": "user", "content": "What's 2+2?"}


async def test_only_the_last_question_can_be_edited(runtime: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    first = await chat_flow.send_message(runtime, user_id=user_id, conversation_id=None, text="first", model=MODEL)
    await finish(first)
    second = await chat_flow.send_message(
        runtime, user_id=user_id, conversation_id=first.conversation.id, text="second", model=MODEL
    )
    await finish(second)
    before = await history(user_id, first.conversation.id)
    requests = standin.requests
    old_question = first.messages[0]
    assert old_question.id is not None
    with pytest.raises(InputError) as info:
        await chat_flow.edit_and_resend(
            runtime, user_id=user_id, conversation_id=first.conversation.id, message_id=old_question.id, text="changed"
        )
    assert info.value.code == "only_last_editable"
    with pytest.raises(InputError) as info:
        await chat_flow.edit_and_resend(
            runtime,
            user_id=user_id,
            conversation_id=first.conversation.id,
            message_id=second.messages[0].id or 0,
            text="",
        )
    assert info.value.code == "empty_message"
    after = await history(user_id, first.conversation.id)
    assert [(m.id, m.content, m.status) for m in after] == [(m.id, m.content, m.status) for m in before]
    assert standin.requests == requests


# --------------------------------------------------------------------------- context sent upstream


async def test_long_conversation_is_trimmed_to_the_budget(make_runtime: RuntimeFactory, standin: StandIn) -> None:
    budget = 300
    rt = await make_runtime(context_token_budget=budget, system_prompt="You are a careful test assistant.")
    user_id = await new_user()
    async with session_scope() as s:
        conv = await make_conversation(s, user_id=user_id)
        for i in range(30):
            await make_exchange(
                s, conversation=conv, question=f"question {i} " + "q" * 150, answer=f"answer {i} " + "a" * 150
            )

    started = await chat_flow.send_message(rt, user_id=user_id, conversation_id=conv.id, text="And now?", model=MODEL)
    await finish(started)
    sent = sent_messages(standin)
    assert sent[0] == {"role": "system", "content": "You are a careful test assistant."}
    assert sent[-1] == {"role": "user", "content": "And now?"}
    assert sum(estimate_tokens(m["content"]) for m in sent) <= budget
    assert 3 <= len(sent) < 20
    assert sent[1]["role"] == "user"
    # the newest turns, in order
    contents = [m["content"] for m in sent[1:-1]]
    assert contents[-1].startswith("answer 29 ")
    numbers = [int(c.split()[1]) for c in contents]
    assert numbers == sorted(numbers)


async def test_a_chat_longer_than_a_read_page_still_sends_every_turn_that_fits(
    make_runtime: RuntimeFactory, standin: StandIn
) -> None:
    """The history is read from the end a page at a time: short turns beyond the first page still go."""
    rt = await make_runtime(context_token_budget=100_000, system_prompt="")
    user_id = await new_user()
    exchanges = chat_flow.HISTORY_PAGE  # twice as many messages as one read page holds
    async with session_scope() as s:
        conv = await make_conversation(s, user_id=user_id)
        for i in range(exchanges):
            await make_exchange(s, conversation=conv, question=f"question {i}", answer=f"answer {i}")

    started = await chat_flow.send_message(rt, user_id=user_id, conversation_id=conv.id, text="All of it?", model=MODEL)
    await finish(started)
    sent = [m["content"] for m in sent_messages(standin)]
    assert len(sent) == 2 * exchanges + 1
    assert sent[:2] == ["question 0", "answer 0"]
    assert sent[-1] == "All of it?"

    # Regenerate reads the same way: the same turns go again.
    started = await chat_flow.regenerate(rt, user_id=user_id, conversation_id=conv.id, model=MODEL)
    await finish(started)
    assert [m["content"] for m in sent_messages(standin)] == sent


# --------------------------------------------------------------------------- titles


async def test_first_message_title(runtime: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    text = "How do I **cook** rice in a pressure cooker quickly and safely at home?"
    started = await chat_flow.send_message(runtime, user_id=user_id, conversation_id=None, text=text, model=MODEL)
    await finish(started)
    conv = await conversation(user_id, started.conversation.id)
    assert conv.title == "How do I cook rice in a pressure"
    assert conv.title == title_from_text(text)
    assert standin.requests == 1


async def test_llm_title_after_the_first_answer(make_runtime: RuntimeFactory, standin: StandIn) -> None:
    rt = await make_runtime(title_mode="llm")
    user_id = await new_user()
    started = await chat_flow.send_message(
        rt, user_id=user_id, conversation_id=None, text="Explain how rubies get their red colour", model=MODEL
    )
    await finish(started)
    conv = await conversation(user_id, started.conversation.id)
    assert conv.title
    assert len(conv.title) <= 80
    assert conv.title_is_auto
    assert standin.requests == 2
    assert standin.records[1].stream is False


async def test_llm_title_uses_the_models_words(make_runtime: RuntimeFactory, standin: StandIn) -> None:
    rt = await make_runtime(title_mode="llm")
    user_id = await new_user()
    started = await chat_flow.send_message(
        rt, user_id=user_id, conversation_id=None, text='[[reply=Title: "Rubies Explained."]] tell me', model=MODEL
    )
    assert started.conversation.title == title_from_text('[[reply=Title: "Rubies Explained."]] tell me')
    await finish(started)
    conv = await conversation(user_id, started.conversation.id)
    assert conv.title == "Rubies Explained"

    # later messages do not retitle, and a user's own title is kept
    async with session_scope() as s:
        await chats.update_conversation(session=s, user_id=user_id, conversation_id=conv.id, title="My rubies")
    more = await chat_flow.send_message(rt, user_id=user_id, conversation_id=conv.id, text="more", model=MODEL)
    await finish(more)
    assert (await conversation(user_id, conv.id)).title == "My rubies"
    assert standin.requests == 3


async def test_no_llm_title_when_the_answer_failed(make_runtime: RuntimeFactory, standin: StandIn) -> None:
    rt = await make_runtime(title_mode="llm")
    standin.config.fault = "http500"
    user_id = await new_user()
    text = "Why is the sky blue"
    started = await chat_flow.send_message(rt, user_id=user_id, conversation_id=None, text=text, model=MODEL)
    await finish(started)
    assert (await conversation(user_id, started.conversation.id)).title == text
    assert standin.requests == 1


@pytest.mark.parametrize("fault", ["drop", "http500", "error_frame", "malformed"])
async def test_title_falls_back_to_the_question_when_the_model_fails(runtime: Runtime, fault: str) -> None:
    question = f"[[fault={fault}]] Why is the sky blue"
    title = await titles.generate_title(runtime.client, MODEL, question, "Because of Rayleigh scattering.")
    assert title == title_from_text(question)
    assert title.endswith("Why is the sky blue")


# --------------------------------------------------------------------------- settings that reach LocalAI


async def test_answer_settings_reach_localai(make_runtime: RuntimeFactory, standin: StandIn) -> None:
    rt = await make_runtime(llm_max_tokens=5, llm_temperature=0.4)
    user_id = await new_user()
    started = await chat_flow.send_message(
        rt, user_id=user_id, conversation_id=None, text="[[tokens=9]] hi", model=MODEL
    )
    await finish(started)
    assert standin.last_request_json is not None
    assert standin.last_request_json["max_tokens"] == 5
    assert standin.last_request_json["temperature"] == 0.4
    answer = (await history(user_id, started.conversation.id))[1]
    assert answer.completion_tokens == 5
    assert answer.status == MessageStatus.complete


async def test_server_defaults_are_left_to_localai(runtime: Runtime, standin: StandIn) -> None:
    user_id = await new_user()
    await finish(await chat_flow.send_message(runtime, user_id=user_id, conversation_id=None, text="hi", model=MODEL))
    assert standin.last_request_json is not None
    assert "max_tokens" not in standin.last_request_json
    assert "temperature" not in standin.last_request_json


async def test_api_key_reaches_localai(make_runtime: RuntimeFactory, standin: StandIn) -> None:
    standin.config.api_key = "sk-rubin"
    rt = await make_runtime(localai_api_key="sk-rubin")
    user_id = await new_user()
    started = await chat_flow.send_message(rt, user_id=user_id, conversation_id=None, text="hi", model=MODEL)
    await finish(started)
    assert (await history(user_id, started.conversation.id))[1].status == MessageStatus.complete


async def test_localai_down_saves_the_question_and_an_explained_error(make_runtime: RuntimeFactory) -> None:
    from tests.conftest import free_port

    rt = await make_runtime(localai_url=f"http://127.0.0.1:{free_port()}")
    user_id = await new_user()
    started = await chat_flow.send_message(rt, user_id=user_id, conversation_id=None, text="anyone there?", model=MODEL)
    await finish(started)
    question, answer = await history(user_id, started.conversation.id)
    assert question.content == "anyone there?"
    assert (answer.status, answer.error) == (MessageStatus.error, "unreachable")
    assert rt.catalog.error is not None and rt.catalog.error.code == "unreachable"


# --------------------------------------------------------------------------- runtime pieces


async def test_a_signed_out_session_stops_resolving_at_once(runtime: Runtime) -> None:
    """The runtime caches resolved sessions, but sign-out (forget) takes effect on the next event."""
    from datetime import timedelta

    from rubin_app.services import sessions

    user_id = await new_user()
    async with session_scope() as s:
        token = await sessions.create(session=s, user_id=user_id, lifetime=timedelta(hours=1))
    first = await runtime.principal(token)
    assert first is not None and first.user_id == user_id
    async with session_scope() as s:
        assert await sessions.revoke(session=s, token=token) == user_id
    runtime.principals.forget_token(token)
    assert await runtime.principal(token) is None
    assert await runtime.principal("not-a-token-but-long-enough-to-look-up") is None
    assert await runtime.principal(None) is None


async def test_model_list_is_cached_and_refreshable(runtime: Runtime, standin: StandIn) -> None:
    assert await runtime.catalog.get() == ["standin-model", "standin-small"]
    standin.config.models = ["other"]
    assert await runtime.catalog.get() == ["standin-model", "standin-small"]
    assert await runtime.catalog.get(refresh=True) == ["other"]
    assert runtime.catalog.error is None


async def test_model_list_survives_localai_going_away(make_runtime: RuntimeFactory) -> None:
    own = StandIn().start()
    try:
        rt = await make_runtime(localai_url=own.url)
        assert await rt.catalog.get() == ["standin-model", "standin-small"]
    finally:
        own.stop()
    assert await rt.catalog.get(refresh=True) == ["standin-model", "standin-small"]
    assert rt.catalog.error is not None and rt.catalog.error.code == "unreachable"


async def test_a_failed_save_cancels_the_early_request_and_leaves_nothing(runtime: Runtime, standin: StandIn) -> None:
    """The request to LocalAI starts before the rows are written; if writing fails, it is called off."""
    standin.config.token_rate = 20  # slow: the request is still open when the save fails
    standin.config.tokens = 200
    handed: list = []
    with pytest.raises(Exception, match=r"(?i)foreign key|integrity|violates"):
        # A user that does not exist: the conversation insert breaks the foreign key.
        await chat_flow.send_message(
            runtime, user_id=987654, conversation_id=None, text="hello", model=MODEL, on_run=handed.append
        )
    assert len(handed) == 1, "a follower got the run before the save failed"
    assert await handed[0].wait_done(timeout=5), "the follower sees the discarded run end"
    for _ in range(50):
        if standin.active_streams == 0:
            break
        await asyncio.sleep(0.02)
    assert standin.active_streams == 0, "the upstream request must be closed"
    assert await counts() == (0, 0)
    assert runtime.generation.active_ids() == []


async def test_the_run_is_handed_over_before_the_exchange_is_saved(runtime: Runtime, standin: StandIn) -> None:
    """A follower can stream the answer from the moment LocalAI is asked; the rows are written meanwhile."""
    me = await new_user()
    first = await chat_flow.send_message(runtime, user_id=me, conversation_id=None, text="one", model=MODEL)
    await finish(first)
    seen: list[tuple[object, int]] = []  # the run and its row id at hand-over
    started = await chat_flow.send_message(
        runtime,
        user_id=me,
        conversation_id=first.conversation.id,
        text="two",
        model=MODEL,
        on_run=lambda run: seen.append((run, run.message_id)),
    )
    assert seen == [(started.run, 0)]  # its request is under way, its row not saved yet
    assert started.run.message_id == started.messages[1].id
    await finish(started)
    assert [m.content for m in await history(me, first.conversation.id)][-2:] == ["two", started.run.text]
    assert started.run.text == expected_reply(sent_messages(standin))
