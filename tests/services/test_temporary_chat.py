"""Temporary chats through the real pipeline (stand-in, Redis, SQLite and PostgreSQL): the answer streams like
any other, and nothing is left behind — no conversation or message rows, no response-cache entry, no webhook
delivery — while limits apply and usage is counted (a row without content). Stop ends it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlmodel import func, select

from rubin_app.models import MessageStatus, UsageRecord
from rubin_app.services import temporary_chat
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.limits import LimitExceeded
from rubin_app.services.runtime import Runtime
from rubin_app.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.fakes.localai_standin import StandIn, expected_reply
from tests.services.helpers import counts, new_user

MODEL = "standin-model"
RuntimeFactory = Callable[..., Awaitable[Runtime]]


async def _rows(table) -> int:
    async with session_scope() as s:
        return int((await s.exec(select(func.count()).select_from(table))).one())


async def test_a_temporary_answer_streams_and_leaves_nothing(
    make_redis_runtime: RuntimeFactory, standin: StandIn, redis_client
) -> None:
    """A cacheable request (temperature 0) from a user with a webhook for every event: the answer is whole, and
    the database holds no chat, message or delivery, Redis no cached answer; one usage row is written."""
    rt = await make_redis_runtime(llm_temperature=0)
    user_id = await new_user()
    async with session_scope() as s:
        s.add(WebhookEndpoint(user_id=user_id, url="https://hooks.example.com/in", secret="x", events="*"))
    run = await temporary_chat.send(rt, user_id=user_id, history=[], text="A secret plan", model=MODEL)
    assert await run.wait_done(timeout=5)
    assert run.status == MessageStatus.complete
    assert run.text == expected_reply(standin.last_request_json["messages"])
    assert await counts() == (0, 0)
    assert await _rows(WebhookDelivery) == 0
    assert [key async for key in redis_client.scan_iter("rubin:cache:*")] == []
    assert await rt.cache.stats() == {"hits": 0, "misses": 0}  # the cache was not even asked
    await rt.usage.flush()
    async with session_scope() as s:
        usage = (await s.exec(select(UsageRecord))).all()
    assert [(u.user_id, u.model, u.status, u.source) for u in usage] == [(user_id, MODEL, "complete", "ui")]


async def test_the_earlier_turns_go_to_the_model(runtime: Runtime, standin: StandIn) -> None:
    """The tab's earlier exchanges are the context (an unfinished answer is left out), nothing read from the DB."""
    user_id = await new_user()
    history = [("user", "My name is Anna."), ("assistant", "Hello, Anna!"), ("system", "ignored")]
    run = await temporary_chat.send(runtime, user_id=user_id, history=history, text="What is my name?", model=MODEL)
    assert await run.wait_done(timeout=5)
    sent = standin.last_request_json["messages"]
    assert sent[1:] == [
        {"role": "user", "content": "My name is Anna."},
        {"role": "assistant", "content": "Hello, Anna!"},
        {"role": "user", "content": "What is my name?"},
    ]
    assert await counts() == (0, 0)


async def test_limits_apply_to_temporary_chats(make_runtime: RuntimeFactory, standin: StandIn) -> None:
    """Requests per minute count temporary answers too: the second one in the minute is refused, unsent."""
    rt = await make_runtime(rate_limit_rpm=1)
    user_id = await new_user()
    run = await temporary_chat.send(rt, user_id=user_id, history=[], text="one", model=MODEL)
    assert await run.wait_done(timeout=5)
    with pytest.raises(LimitExceeded) as refused:
        await temporary_chat.send(rt, user_id=user_id, history=[], text="two", model=MODEL)
    assert refused.value.code == "rate_limit"
    assert standin.requests == 1


async def test_bad_input_is_refused_before_the_model_is_asked(runtime: Runtime, standin: StandIn) -> None:
    """An empty message or an unknown model: a clear error code, nothing sent."""
    user_id = await new_user()
    for text, model, code in (("   ", MODEL, "empty_message"), ("hi", "no-such-model", "unknown_model")):
        with pytest.raises(InputError) as refused:
            await temporary_chat.send(runtime, user_id=user_id, history=[], text=text, model=model)
        assert refused.value.code == code
    assert standin.requests == 0


async def test_stop_ends_a_temporary_answer_and_frees_its_slot(make_runtime: RuntimeFactory, standin: StandIn) -> None:
    """Stop mid-answer: interrupted, the upstream request closed, the user's answer slot free again."""
    rt = await make_runtime(max_concurrent_answers=1)
    standin.config.token_rate = 20
    user_id = await new_user()
    run = await temporary_chat.send(rt, user_id=user_id, history=[], text="[[tokens=200]] a long one", model=MODEL)
    await run.wait_first_output()
    assert await rt.generation.stop_run(run)
    assert (run.status, run.error) == (MessageStatus.interrupted, "stopped")
    assert 0 < len(run.text) < len(expected_reply(standin.last_request_json["messages"], tokens=200))
    standin.config.token_rate = 0
    again = await temporary_chat.send(rt, user_id=user_id, history=[], text="next", model=MODEL)
    assert await again.wait_done(timeout=5)
    assert await counts() == (0, 0)
