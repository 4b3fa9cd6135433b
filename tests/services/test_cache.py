"""The response cache through chat_flow: real Redis, real stand-in, real database.

A hit is visible to the user as an instant answer (the stand-in never sees the request) with the same
text, saved as complete; to an admin through the hit/miss counters. Answers are cached per user unless
CACHE_SHARED is on: `ask` asks as the test's one user unless told otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from rubin_app.models import MessageStatus
from rubin_app.services import chat_flow, chats
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime
from tests.fakes.localai_standin import StandIn
from tests.services.helpers import new_user

MODEL, OTHER_MODEL = "standin-model", "standin-small"
RuntimeFactory = Callable[..., Awaitable[Runtime]]


_asker: dict[str, int] = {}


@pytest.fixture(autouse=True)
def one_asker_per_test() -> None:
    """Each test starts without its default user (made on the first `ask`)."""
    _asker.clear()


async def ask(rt: Runtime, text: str, model: str = MODEL, user_id: int | None = None) -> chat_flow.Started:
    """A question in a new chat (by the test's one user, unless `user_id`), answered to the end."""
    if user_id is None:
        user_id = _asker["id"] if "id" in _asker else _asker.setdefault("id", await new_user())
    started = await chat_flow.send_message(rt, user_id=user_id, conversation_id=None, text=text, model=model)
    assert await started.run.wait_done(timeout=10)
    return started


async def saved_answer(started: chat_flow.Started):
    async with session_scope() as s:
        return await chats.get_message(
            session=s, user_id=started.conversation.user_id, message_id=started.messages[1].id
        )


async def cache_keys(redis_client) -> list[bytes]:
    return [key async for key in redis_client.scan_iter("rubin:cache:v1:*")]


async def test_the_same_question_again_is_answered_from_the_cache(
    make_redis_runtime: RuntimeFactory, standin: StandIn
) -> None:
    rt = await make_redis_runtime(llm_temperature=0)
    first = await ask(rt, "What is Redis?")
    assert standin.requests == 1 and first.run.replay is None
    second = await ask(rt, "What is Redis?")  # the same user, another chat

    assert standin.requests == 1  # LocalAI was not asked
    assert second.run.replay is not None
    saved = await saved_answer(second)
    assert saved is not None
    assert (saved.status, saved.content) == (MessageStatus.complete, first.run.text)
    assert saved.completion_tokens == first.run.completion_tokens
    assert await rt.cache.stats() == {"hits": 1, "misses": 1}


async def test_another_user_is_never_answered_from_someone_elses_question(
    make_redis_runtime: RuntimeFactory, standin: StandIn
) -> None:
    """By default the cache is per user: B asking what A asked goes to the model (no "someone asked this")."""
    rt = await make_redis_runtime(llm_temperature=0)
    await ask(rt, "Is this diagnosis serious?", user_id=await new_user())
    other = await ask(rt, "Is this diagnosis serious?", user_id=await new_user())
    assert standin.requests == 2 and other.run.replay is None
    assert await rt.cache.stats() == {"hits": 0, "misses": 2}


async def test_cache_shared_answers_every_user_per_model(make_redis_runtime: RuntimeFactory, standin: StandIn) -> None:
    """CACHE_SHARED=true: one answer per model for everyone (documented: a fast answer tells someone asked)."""
    rt = await make_redis_runtime(llm_temperature=0, cache_shared=True)
    await ask(rt, "What is Redis?", user_id=await new_user())
    other = await ask(rt, "What is Redis?", user_id=await new_user())
    assert standin.requests == 1 and other.run.replay is not None
    other_model = await ask(rt, "What is Redis?", model=OTHER_MODEL, user_id=await new_user())
    assert standin.requests == 2 and other_model.run.replay is None


async def test_another_question_or_model_is_a_miss(make_redis_runtime: RuntimeFactory, standin: StandIn) -> None:
    rt = await make_redis_runtime(llm_temperature=0)
    await ask(rt, "What is Redis?")
    other_question = await ask(rt, "What is Postgres?")
    other_model = await ask(rt, "What is Redis?", model=OTHER_MODEL)
    assert standin.requests == 3
    assert other_question.run.replay is None and other_model.run.replay is None
    assert "Postgres" in other_question.run.text
    assert await rt.cache.stats() == {"hits": 0, "misses": 3}
    await ask(rt, "What is Redis?", model=OTHER_MODEL)
    assert standin.requests == 3  # each of them is cached under its own key


async def test_a_cached_answer_expires_after_its_ttl(
    make_redis_runtime: RuntimeFactory, standin: StandIn, redis_client
) -> None:
    rt = await make_redis_runtime(llm_temperature=0, cache_ttl=1)
    await ask(rt, "Short-lived")
    (key,) = await cache_keys(redis_client)
    assert 0 < await redis_client.pttl(key) <= 1000
    await ask(rt, "Short-lived")
    assert standin.requests == 1
    await asyncio.sleep(1.1)
    late = await ask(rt, "Short-lived")
    assert standin.requests == 2 and late.run.replay is None


async def test_regenerate_never_replays_but_edit_may(make_redis_runtime: RuntimeFactory, standin: StandIn) -> None:
    rt = await make_redis_runtime(llm_temperature=0)
    user_id = await new_user()
    first = await ask(rt, "Tell me a joke", user_id=user_id)
    await ask(rt, "Another joke", user_id=user_id)
    assert standin.requests == 2

    again = await chat_flow.regenerate(rt, user_id=user_id, conversation_id=first.conversation.id)
    assert await again.run.wait_done(timeout=10)
    assert standin.requests == 3  # the user asked for a new answer: LocalAI is asked
    assert again.run.replay is None and again.run.status == MessageStatus.complete

    edited = await chat_flow.edit_and_resend(
        rt, user_id=user_id, conversation_id=first.conversation.id, message_id=first.messages[0].id,
        text="Another joke",
    )  # fmt: skip
    assert await edited.run.wait_done(timeout=10)
    assert standin.requests == 3  # an edit to a question already answered is served from the cache
    assert edited.run.replay is not None
    saved = await saved_answer(edited)
    assert saved is not None and saved.status == MessageStatus.complete and saved.content


async def test_an_answer_over_the_size_bound_is_not_cached(
    make_redis_runtime: RuntimeFactory, standin: StandIn, redis_client
) -> None:
    rt = await make_redis_runtime(llm_temperature=0, cache_max_bytes=1024)
    big = await ask(rt, "[[tokens=400]] Write a long essay")
    assert len(big.run.text.encode()) > 1024 and big.run.status == MessageStatus.complete
    small = await ask(rt, "Short one")
    assert len(await cache_keys(redis_client)) == 1  # only the small one
    await ask(rt, "[[tokens=400]] Write a long essay")
    await ask(rt, "Short one")
    assert standin.requests == 3  # the essay was asked twice, the short one once
    assert rt.cache.skipped >= 1 and small.run.replay is None


async def test_nothing_is_cached_at_the_servers_temperature(
    make_redis_runtime: RuntimeFactory, standin: StandIn, redis_client
) -> None:
    rt = await make_redis_runtime(llm_temperature=None, cache_models="")
    await ask(rt, "Random story")
    second = await ask(rt, "Random story")
    assert standin.requests == 2 and second.run.replay is None  # sampled answers differ: never replayed
    assert await cache_keys(redis_client) == []
    assert await rt.cache.stats() == {"hits": 0, "misses": 0}


async def test_a_model_in_cache_models_is_cached_at_any_temperature(
    make_redis_runtime: RuntimeFactory, standin: StandIn
) -> None:
    rt = await make_redis_runtime(llm_temperature=0.7, cache_models=MODEL)
    await ask(rt, "Random story")
    cached = await ask(rt, "Random story")
    assert standin.requests == 1 and cached.run.replay is not None
    await ask(rt, "Random story", model=OTHER_MODEL)
    await ask(rt, "Random story", model=OTHER_MODEL)
    assert standin.requests == 3  # the other model is not in CACHE_MODELS
    assert await rt.cache.stats() == {"hits": 1, "misses": 1}


async def test_workers_share_the_cache_and_its_counters(make_redis_runtime: RuntimeFactory, standin: StandIn) -> None:
    worker_a, worker_b = await make_redis_runtime(llm_temperature=0), await make_redis_runtime(llm_temperature=0)
    await ask(worker_a, "Shared question")
    hit = await ask(worker_b, "Shared question")
    await ask(worker_a, "Shared question")
    assert standin.requests == 1 and hit.run.replay is not None
    assert await worker_a.cache.stats() == await worker_b.cache.stats() == {"hits": 2, "misses": 1}
    assert (worker_b.cache.hits, worker_b.cache.misses) == (1, 0)  # this process's own share
