"""Rate limits, token quotas and concurrent answers: with a real Redis and without it (in-process).

The limiter tests run on both backends; the chat-flow tests drive `send_message` through a Runtime
(stand-in, real database) and check what the user meets: the refusal, its code and when to retry, and
that a refused request leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import func, select

from rubin_app.models import Conversation, Message, MessageStatus, Role
from rubin_app.services import chat_flow
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.limits import Limiter, LimitExceeded, Limits, get_limits, set_limits
from rubin_app.services.redis_store import RedisStore
from rubin_app.services.runtime import Runtime
from tests.factories import make_account, make_user
from tests.fakes.localai_standin import StandIn
from tests.services.conftest import close_runtimes

MODEL = "standin-model"
LimiterFactory = Callable[..., Limiter]
RuntimeFactory = Callable[..., Awaitable[Runtime]]


@pytest.fixture(params=["redis", "memory"])
async def new_limiter(request: pytest.FixtureRequest) -> AsyncIterator[LimiterFactory]:
    """Factory of Limiters: each one is a worker (its own Redis connection pool), or in-process only."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    stores: list[RedisStore] = []

    def make(**kwargs: Any) -> Limiter:
        store = RedisStore(url) if url else None
        if store is not None:
            stores.append(store)
        return Limiter(store, **kwargs)

    yield make
    for store in stores:
        await store.close()


def seconds_to_midnight_utc() -> float:
    now = datetime.now(UTC)
    return (datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1) - now).total_seconds()


# --------------------------------------------------------------------------- requests per minute


async def test_the_request_over_the_limit_waits_for_the_window(new_limiter: LimiterFactory) -> None:
    limiter = new_limiter()
    assert [(await limiter.hit("user:1", 3, window_ms=500))[0] for _ in range(3)] == [True, True, True]
    allowed, wait = await limiter.hit("user:1", 3, window_ms=500)
    assert not allowed
    assert 0 < wait <= 0.5  # the oldest request leaves the window within it
    assert (await limiter.hit("user:2", 3, window_ms=500))[0]  # someone else is not affected
    await asyncio.sleep(wait + 0.05)
    assert (await limiter.hit("user:1", 3, window_ms=500))[0]


async def test_check_request_refuses_with_rate_limit_and_a_reset_within_the_minute(
    new_limiter: LimiterFactory,
) -> None:
    limiter = new_limiter()
    limits = Limits(requests_per_minute=2)
    for _ in range(2):
        await limiter.check_request(user_id=1, ip="", limits=limits)
    with pytest.raises(LimitExceeded) as info:
        await limiter.check_request(user_id=1, ip="", limits=limits)
    assert info.value.code == "rate_limit"
    assert info.value.params["limit"] == 2
    assert 1 <= info.value.params["seconds"] <= 60
    assert info.value.params["minutes"] == 1
    await limiter.check_request(user_id=2, ip="", limits=limits)


async def test_the_ip_limit_counts_every_user_behind_one_address(new_limiter: LimiterFactory) -> None:
    limiter = new_limiter()
    limits = Limits(requests_per_minute=0, ip_requests_per_minute=2)
    await limiter.check_request(user_id=1, ip="203.0.113.5", limits=limits)
    await limiter.check_request(user_id=2, ip="203.0.113.5", limits=limits)
    with pytest.raises(LimitExceeded) as info:
        await limiter.check_request(user_id=3, ip="203.0.113.5", limits=limits)
    assert (info.value.code, info.value.params["limit"]) == ("ip_rate_limit", 2)
    assert 1 <= info.value.params["seconds"] <= 60
    await limiter.check_request(user_id=3, ip="198.51.100.7", limits=limits)  # another network
    await limiter.check_request(user_id=3, ip="", limits=limits)  # address unknown: per-user limit only


async def test_fifty_parallel_requests_admit_exactly_the_limit(new_limiter: LimiterFactory) -> None:
    limiter = new_limiter()
    results = await asyncio.gather(*(limiter.hit("user:7", 10) for _ in range(50)))
    assert sum(allowed for allowed, _ in results) == 10
    assert all(0 < wait <= 60 for allowed, wait in results if not allowed)


async def test_two_workers_share_one_window(redis_url: str) -> None:
    stores = [RedisStore(redis_url), RedisStore(redis_url)]  # two workers: two connection pools
    a, b = Limiter(stores[0]), Limiter(stores[1])
    try:
        results = await asyncio.gather(*((a if i % 2 else b).hit("user:7", 10) for i in range(50)))
        assert sum(allowed for allowed, _ in results) == 10
        assert not (await a.hit("user:7", 10))[0]
        assert not (await b.hit("user:7", 10))[0]
    finally:
        for store in stores:
            await store.close()


# --------------------------------------------------------------------------- tokens per day


async def test_the_token_quota_refuses_until_midnight_utc(new_limiter: LimiterFactory) -> None:
    limiter = new_limiter()
    limits = Limits(tokens_per_day=100)
    await limiter.add_tokens(1, 60)
    await limiter.check_request(user_id=1, ip="", limits=limits)
    await limiter.add_tokens(1, 40)
    assert await limiter.tokens_today(1) == 100
    with pytest.raises(LimitExceeded) as info:
        await limiter.check_request(user_id=1, ip="", limits=limits)
    left = seconds_to_midnight_utc()
    assert (info.value.code, info.value.params["limit"]) == ("token_quota", 100)
    assert abs(info.value.params["seconds"] - left) <= 5
    assert info.value.params["hours"] == math.ceil(info.value.params["seconds"] / 3600)  # "in N h", never "in 0 h"
    assert 1 <= info.value.params["hours"] <= 24
    await limiter.check_request(user_id=2, ip="", limits=limits)
    if limiter.store is not None:  # another worker sees the same count
        assert await new_limiter().tokens_today(1) == 100


async def test_parallel_reservations_share_the_quota_exactly(new_limiter: LimiterFactory) -> None:
    """50 requests at once against 1,000 tokens, 150 reserved each: 6 full reservations and one of the last
    100, never more than the quota in all; the others are refused with the quota error."""
    limiter = new_limiter()
    limits = Limits(tokens_per_day=1000)

    async def ask() -> str | LimitExceeded:
        try:
            return await limiter.check_request(user_id=1, ip="", limits=limits, estimate=150)
        except LimitExceeded as exc:
            return exc

    results = await asyncio.gather(*(ask() for _ in range(50)))
    tickets = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, LimitExceeded)]
    assert sorted(limiter.reserved(t) or 0 for t in tickets) == [100, 150, 150, 150, 150, 150, 150]
    assert {(r.code, r.params["limit"]) for r in refused} == {("token_quota", 1000)}
    assert await limiter.tokens_today(1) == 0  # reserved, not used yet
    # Which request got the partial 100 depends on the order Redis saw them: pick full reservations by size.
    settled, released, *_others = sorted(tickets, key=lambda t: -(limiter.reserved(t) or 0))
    # An answer settles below its reservation: the rest is free again, for the next one only.
    await limiter.settle_tokens(settled, 40)
    assert await limiter.tokens_today(1) == 40
    again = await limiter.check_request(user_id=1, ip="", limits=limits, estimate=150)
    assert limiter.reserved(again) == 150 - 40
    with pytest.raises(LimitExceeded):
        await limiter.check_request(user_id=1, ip="", limits=limits, estimate=150)
    # A failed answer (or one refused later, e.g. by the concurrency limit) gives all of it back.
    await limiter.release(1, released)
    assert limiter.reserved(released) is None
    assert await limiter.tokens_today(1) == 40
    assert limiter.reserved(await limiter.check_request(user_id=1, ip="", limits=limits, estimate=500)) == 150


async def test_a_refused_request_keeps_no_reservation(new_limiter: LimiterFactory) -> None:
    limiter = new_limiter()
    limits = Limits(tokens_per_day=100, requests_per_minute=1)
    first = await limiter.check_request(user_id=1, ip="", limits=limits, estimate=60)
    with pytest.raises(LimitExceeded) as info:
        await limiter.check_request(user_id=1, ip="", limits=limits, estimate=60)
    assert info.value.code == "rate_limit"
    await limiter.settle_tokens(first, 0)
    assert limiter.reserved(await limiter.check_request(user_id=1, ip="", limits=Limits(tokens_per_day=100))) == 1
    assert (
        limiter.reserved(await limiter.check_request(user_id=2, ip="", limits=Limits(tokens_per_day=100), estimate=100))
        == 100
    )  # the refused one held nothing: the whole quota was free


async def test_two_workers_share_one_quota(redis_url: str) -> None:
    stores = [RedisStore(redis_url), RedisStore(redis_url)]
    a, b = Limiter(stores[0]), Limiter(stores[1])
    limits = Limits(tokens_per_day=1000)

    async def ask(limiter: Limiter) -> int:
        try:
            return limiter.reserved(await limiter.check_request(user_id=1, ip="", limits=limits, estimate=300)) or 0
        except LimitExceeded:
            return 0

    try:
        held = await asyncio.gather(*(ask(a if i % 2 else b) for i in range(20)))
        assert sorted(h for h in held if h) == [100, 300, 300, 300]
    finally:
        for store in stores:
            await store.close()


async def test_a_reservation_whose_worker_died_lapses(new_limiter: LimiterFactory) -> None:
    limiter = new_limiter(slot_ttl=0.4)
    limits = Limits(tokens_per_day=100)
    await limiter.check_request(user_id=1, ip="", limits=limits, estimate=100)  # never settled
    other = new_limiter(slot_ttl=0.4) if limiter.store is not None else limiter  # another worker, with Redis
    with pytest.raises(LimitExceeded):
        await other.check_request(user_id=1, ip="", limits=limits, estimate=100)
    await asyncio.sleep(0.5)
    assert limiter.reserved(await limiter.check_request(user_id=1, ip="", limits=limits, estimate=100)) == 100


# --------------------------------------------------------------------------- concurrent answers


async def test_concurrency_slots(new_limiter: LimiterFactory) -> None:
    limiter = new_limiter()
    first, second = await limiter.acquire(1, 2), await limiter.acquire(1, 2)
    assert first and second and first != second
    assert await limiter.acquire(1, 2) is None
    assert await limiter.acquire(2, 2) is not None  # per user
    if limiter.store is not None:
        assert await new_limiter().acquire(1, 2) is None  # another worker sees the taken slots
    await limiter.release(1, first)
    assert await limiter.acquire(1, 2) is not None
    assert await limiter.acquire(1, 2) is None
    assert all([await limiter.acquire(3, 0) for _ in range(5)])  # 0: no limit


async def test_a_slot_never_released_expires(new_limiter: LimiterFactory) -> None:
    limiter = new_limiter(slot_ttl=0.4)  # e.g. the worker holding it died
    assert await limiter.acquire(1, 1) is not None
    assert await limiter.acquire(1, 1) is None
    await asyncio.sleep(0.5)
    assert await limiter.acquire(1, 1) is not None


# --------------------------------------------------------------------------- per-user overrides


async def test_an_admin_overrides_one_users_limits(db_scope: Callable[[], Any], make_settings) -> None:
    settings = make_settings(rate_limit_rpm=20, rate_limit_ip_rpm=60, tokens_per_day=0, max_concurrent_answers=3)
    async with db_scope() as s:
        admin = await make_account(s, email="admin@example.com", role=Role.admin)
        user = await make_account(s, email="user@example.com")
        other = await make_account(s, email="other@example.com")
        default = Limits(requests_per_minute=20, ip_requests_per_minute=60, tokens_per_day=0, concurrent=3)
        assert await get_limits(session=s, settings=settings, user_id=user.id) == default
        await set_limits(
            session=s, actor_id=admin.id, user_id=user.id, requests_per_minute=5, tokens_per_day=1000, concurrent=None
        )
    async with db_scope() as s:  # saved: every worker reads it
        assert await get_limits(session=s, settings=settings, user_id=user.id) == Limits(5, 60, 1000, 3)
        assert await get_limits(session=s, settings=settings, user_id=other.id) == default
        await set_limits(
            session=s, actor_id=admin.id, user_id=user.id, requests_per_minute=None, tokens_per_day=0, concurrent=0
        )
        assert await get_limits(session=s, settings=settings, user_id=user.id) == Limits(20, 60, 0, 0)


async def test_only_admins_set_limits_and_values_are_checked(db_scope: Callable[[], Any], make_settings) -> None:
    settings = make_settings()
    async with db_scope() as s:
        admin = await make_account(s, email="admin@example.com", role=Role.admin)
        user = await make_account(s, email="user@example.com")
        for actor, target, values, code in [
            (user.id, user.id, (100, None, None), "admin_only"),
            (admin.id, user.id + 1000, (1, None, None), "account_not_found"),
            (admin.id, user.id, (-1, None, None), "bad_limit"),
            (admin.id, user.id, (None, 10_000_001, None), "bad_limit"),
            (admin.id, user.id, (None, None, -5), "bad_limit"),
        ]:
            with pytest.raises(InputError) as info:
                await set_limits(
                    session=s, actor_id=actor, user_id=target, requests_per_minute=values[0],
                    tokens_per_day=values[1], concurrent=values[2],
                )  # fmt: skip
            assert info.value.code == code
        assert await get_limits(session=s, settings=settings, user_id=user.id) == await get_limits(
            session=s, settings=settings, user_id=admin.id
        )


# --------------------------------------------------------------------------- through chat_flow


@pytest.fixture(params=["redis", "memory"])
async def limited_runtime(
    request: pytest.FixtureRequest, make_runtime: RuntimeFactory
) -> AsyncIterator[RuntimeFactory]:
    """Runtimes with Redis (limits shared by the workers) or without (in-process limits)."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    made: list[Runtime] = []

    async def make(**overrides: Any) -> Runtime:
        made.append(await make_runtime(redis_url=url, **overrides))
        return made[-1]

    yield make
    await close_runtimes(made)


async def new_user() -> int:
    async with session_scope() as session:
        user = await make_user(session)
    assert user.id is not None
    return user.id


async def rows() -> tuple[int, int]:
    async with session_scope() as s:
        conversations = (await s.exec(select(func.count()).select_from(Conversation))).one()
        messages = (await s.exec(select(func.count()).select_from(Message))).one()
    return int(conversations), int(messages)


async def send(rt: Runtime, user_id: int, text: str = "Hello", conversation_id: str | None = None):
    return await chat_flow.send_message(
        rt, user_id=user_id, conversation_id=conversation_id, text=text, model=MODEL, ip="192.0.2.1"
    )


async def finish(started: chat_flow.Started) -> None:
    assert await started.run.wait_done(timeout=10)
    assert started.run.status == MessageStatus.complete


async def test_the_third_message_in_a_minute_is_refused_and_nothing_is_saved(
    limited_runtime: RuntimeFactory, standin: StandIn
) -> None:
    rt = await limited_runtime(rate_limit_rpm=2)
    user_id = await new_user()
    first = await send(rt, user_id)
    await finish(first)
    await finish(await send(rt, user_id, conversation_id=first.conversation.id))
    before, requests = await rows(), standin.requests
    with pytest.raises(LimitExceeded) as info:
        await send(rt, user_id, conversation_id=first.conversation.id)
    assert (info.value.code, info.value.params["limit"]) == ("rate_limit", 2)
    assert 1 <= info.value.params["seconds"] <= 60
    with pytest.raises(LimitExceeded):
        await send(rt, user_id)  # a new chat is refused the same way
    assert await rows() == before
    assert standin.requests == requests
    await finish(await send(rt, await new_user()))  # other users are not limited by it


async def test_a_second_answer_while_one_streams_is_refused(limited_runtime: RuntimeFactory) -> None:
    rt = await limited_runtime(max_concurrent_answers=1)
    user_id = await new_user()
    first = await send(rt, user_id, "[[tokens=40]] [[rate=50]] long answer")
    await asyncio.sleep(0.1)
    assert not first.run.finished
    before = await rows()
    with pytest.raises(LimitExceeded) as info:
        await send(rt, user_id, "Another question")
    assert (info.value.code, info.value.params["limit"]) == ("concurrency", 1)
    assert await rows() == before
    await finish(first)
    await finish(await send(rt, user_id, "Another question"))


async def test_a_finished_answer_has_freed_its_slot_and_counted_its_tokens(limited_runtime: RuntimeFactory) -> None:
    rt = await limited_runtime(max_concurrent_answers=1, tokens_per_day=1_000_000)
    user_id = await new_user()
    used = 0
    for _ in range(8):  # whoever waits for an answer's end (Stop, Regenerate, shutdown) must not find it half-done
        await finish(await send(rt, user_id, "Hi"))
        slot = await rt.limiter.acquire(user_id, 1)
        assert slot is not None
        await rt.limiter.release(user_id, slot)
        assert await rt.limiter.tokens_today(user_id) > used
        used = await rt.limiter.tokens_today(user_id)


async def test_a_stopped_answer_frees_its_slot(limited_runtime: RuntimeFactory) -> None:
    rt = await limited_runtime(max_concurrent_answers=1)
    user_id = await new_user()
    first = await send(rt, user_id, "[[tokens=200]] [[rate=50]] long answer")
    await asyncio.sleep(0.1)
    assert await rt.generation.stop(user_id=user_id, message_id=first.messages[1].id)
    assert first.run.status == MessageStatus.interrupted
    await finish(await send(rt, user_id, "Next"))


async def test_regenerate_or_edit_while_the_answer_streams_takes_over_its_slot(limited_runtime: RuntimeFactory) -> None:
    rt = await limited_runtime(max_concurrent_answers=1)
    user_id = await new_user()
    first = await send(rt, user_id, "[[tokens=200]] [[rate=50]] long answer")
    await asyncio.sleep(0.1)
    again = await chat_flow.regenerate(rt, user_id=user_id, conversation_id=first.conversation.id)
    assert first.run.status == MessageStatus.interrupted  # the streaming answer was stopped for the new one
    edited = await chat_flow.edit_and_resend(
        rt, user_id=user_id, conversation_id=first.conversation.id, message_id=first.messages[0].id, text="Short"
    )
    await finish(edited)
    assert again.run.status == MessageStatus.interrupted
    # Once an answer is over, its slot is free at once (no window where a new message is refused).
    for _ in range(5):
        await finish(await send(rt, user_id, "Next", conversation_id=first.conversation.id))


async def test_an_answer_is_held_to_the_quota_and_then_the_next_message_is_refused(
    limited_runtime: RuntimeFactory, standin: StandIn
) -> None:
    rt = await limited_runtime(tokens_per_day=120)
    user_id = await new_user()
    first = await send(rt, user_id, "[[tokens=400]] tell me a lot")
    await finish(first)  # cut short by its max_tokens: it reserved the 120 tokens left (finish "length")
    used = (first.run.prompt_tokens or 0) + (first.run.completion_tokens or 0)
    assert 50 < used <= 120 and first.run.completion_tokens and first.run.completion_tokens < 400
    assert await rt.limiter.tokens_today(user_id) == used
    await rt.limiter.add_tokens(user_id, 120 - used)  # the day's tokens used up
    before, requests = await rows(), standin.requests
    with pytest.raises(LimitExceeded) as info:
        await send(rt, user_id, "More")
    assert (info.value.code, info.value.params["limit"]) == ("token_quota", 120)
    assert 1 <= info.value.params["hours"] <= 24
    assert await rows() == before
    assert standin.requests == requests


async def test_too_little_left_for_the_question_ends_the_answer_without_asking_localai(
    limited_runtime: RuntimeFactory, standin: StandIn
) -> None:
    rt = await limited_runtime(tokens_per_day=100)
    user_id = await new_user()
    await rt.limiter.add_tokens(user_id, 90)  # 10 left: less than the system prompt and the question
    requests = standin.requests
    started = await send(rt, user_id, "A question that does not fit")
    assert await started.run.wait_done(timeout=10)
    assert (started.run.status, started.run.error) == (MessageStatus.error, "quota_short")
    assert standin.requests == requests
    assert await rt.limiter.tokens_today(user_id) == 90  # it used nothing, and holds nothing
    assert rt.limiter.reserved(started.run.slot) is None


async def test_parallel_answers_never_exceed_the_days_tokens(limited_runtime: RuntimeFactory, standin: StandIn) -> None:
    """Ten messages at once (on two workers with Redis, one without) against 400 tokens a day: each answer
    reserves its context budget and max_tokens (164) of what is left; the answer that got less is cut to fit;
    the others are refused with the quota error. The day's count never exceeds the quota, then or later."""
    settings = dict(tokens_per_day=400, llm_max_tokens=100, context_token_budget=64, max_concurrent_answers=0)
    rts = [await limited_runtime(**settings)]
    if rts[0].redis is not None:
        rts.append(await limited_runtime(**settings))
    workers = len(rts)
    user_id = await new_user()
    standin.config.token_rate = 200

    async def one(i: int) -> chat_flow.Started | LimitExceeded:
        try:
            return await send(rts[i % workers], user_id, "[[tokens=80]] Tell me about rubies")
        except LimitExceeded as exc:
            return exc

    results = await asyncio.gather(*(one(i) for i in range(10)))
    started = [r for r in results if isinstance(r, chat_flow.Started)]
    refused = [r for r in results if isinstance(r, LimitExceeded)]
    assert len(started) == 3, "164 + 164 + the 72 left"
    assert {(r.code, r.params["limit"]) for r in refused} == {("token_quota", 400)}
    for s in started:
        assert await s.run.wait_done(timeout=10)
    counted = sum((s.run.prompt_tokens or 0) + (s.run.completion_tokens or 0) for s in started)
    assert sorted(s.run.completion_tokens or 0 for s in started)[1:] == [80, 80]
    assert await rts[0].limiter.tokens_today(user_id) == counted <= 400
    for _ in range(10):  # what is left goes to the next messages, never more
        try:
            more = await send(rts[0], user_id, "[[tokens=80]] And sapphires?")
        except LimitExceeded as exc:
            assert exc.code == "token_quota"
            break
        assert await more.run.wait_done(timeout=10)
        assert await rts[0].limiter.tokens_today(user_id) <= 400
        if more.run.error == "quota_short":  # what is left is less than the question
            break
    else:
        raise AssertionError("the quota never ran out")
    assert await rts[0].limiter.tokens_today(user_id) <= 400


async def test_an_admins_override_applies_to_the_next_message(limited_runtime: RuntimeFactory) -> None:
    rt = await limited_runtime(rate_limit_rpm=20)
    async with session_scope() as s:
        admin = await make_account(s, email="admin@example.com", role=Role.admin)
        user = await make_account(s, email="user@example.com")
        await set_limits(
            session=s, actor_id=admin.id, user_id=user.id, requests_per_minute=1, tokens_per_day=None, concurrent=None
        )
    await finish(await send(rt, user.id))
    with pytest.raises(LimitExceeded) as info:
        await send(rt, user.id)
    assert (info.value.code, info.value.params["limit"]) == ("rate_limit", 1)
    await finish(await send(rt, admin.id))
    await finish(await send(rt, admin.id))  # the default (20) still applies to everyone else


# --------------------------------------------------------------------------- admission in one step


async def test_admit_counts_a_request_and_takes_a_slot_that_finish_gives_back(new_limiter: LimiterFactory) -> None:
    """What the chat and the APIs call: rate, IP rate and answers at once checked together; a refused
    request counts nowhere (in Redis one round trip; in-process step by step, same outcome)."""
    limiter = new_limiter()
    limits = Limits(requests_per_minute=3, ip_requests_per_minute=100, concurrent=2)
    first = await limiter.admit(user_id=1, ip="203.0.113.5", limits=limits)
    second = await limiter.admit(user_id=1, ip="203.0.113.5", limits=limits)
    with pytest.raises(LimitExceeded) as busy:
        await limiter.admit(user_id=1, ip="203.0.113.5", limits=limits)
    assert busy.value.code == "concurrency"
    await limiter.finish(1, first, tokens=40)
    third = await limiter.admit(user_id=1, ip="203.0.113.5", limits=limits)  # the slot came back
    with pytest.raises(LimitExceeded) as fast:
        await limiter.admit(user_id=1, ip="203.0.113.5", limits=limits)
    assert fast.value.code in ("rate_limit", "concurrency")
    await limiter.finish(1, second, tokens=2)
    await limiter.finish(1, third, tokens=0)
    with pytest.raises(LimitExceeded) as rate:  # 3 counted (the refusals were not): the fourth waits
        await limiter.admit(user_id=1, ip="203.0.113.5", limits=limits)
    assert rate.value.code == "rate_limit" and 0 < rate.value.retry_after <= 60
    assert await limiter.tokens_today(1) == 42


async def test_admit_refused_by_the_ip_limit_does_not_use_up_the_users_minute(new_limiter: LimiterFactory) -> None:
    limiter = new_limiter()
    crowded = Limits(requests_per_minute=2, ip_requests_per_minute=1)
    await limiter.admit(user_id=1, ip="198.51.100.9", limits=crowded)
    for _ in range(3):
        with pytest.raises(LimitExceeded) as refused:
            await limiter.admit(user_id=2, ip="198.51.100.9", limits=crowded)
        assert refused.value.code == "ip_rate_limit"
    await limiter.admit(user_id=2, ip="192.0.2.1", limits=crowded)  # user 2's minute is intact: two left
    await limiter.admit(user_id=2, ip="192.0.2.2", limits=crowded)
