"""Redis goes away mid-test (the real server is stopped) and comes back on the same port.

Users keep chatting (limits fall back in-process, the cache misses), health says "degraded", one warning
is logged; once Redis is back and the breaker re-probes, the same Runtime uses Redis again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from starlette.requests import Request

from rubin_app.api.routes import health
from rubin_app.models import MessageStatus
from rubin_app.services import chat_flow
from rubin_app.services.limits import LimitExceeded
from rubin_app.services.runtime import Runtime
from tests.fakes.localai_standin import StandIn
from tests.fakes.redis_server import RedisServer
from tests.services.helpers import new_user

MODEL = "standin-model"
RETRY_AFTER = 0.3
RuntimeFactory = Callable[..., Awaitable[Runtime]]


async def ask(rt: Runtime, user_id: int, text: str = "What is Redis?") -> chat_flow.Started:
    started = await chat_flow.send_message(
        rt, user_id=user_id, conversation_id=None, text=text, model=MODEL, ip="192.0.2.7"
    )
    assert await started.run.wait_done(timeout=10)
    assert started.run.status == MessageStatus.complete
    return started


async def get_health() -> dict:
    import json

    response = await health(Request({"type": "http", "method": "GET", "path": "/api/health", "headers": []}))
    return json.loads(bytes(response.body))


def warnings_with(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_redis_away_and_back(
    make_redis_runtime: RuntimeFactory, redis_server: RedisServer, redis_client, standin: StandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING)
    rt = await make_redis_runtime(llm_temperature=0, rate_limit_rpm=3, rate_limit_ip_rpm=0)
    assert rt.redis is not None
    rt.redis.retry_after = RETRY_AFTER
    user_id = await new_user()
    await ask(rt, user_id)
    assert (await ask(rt, user_id)).run.replay is not None and standin.requests == 1
    assert (await get_health())["status"] == "ok"

    redis_server.stop()  # ---------------------------------------------------------------- Redis goes away
    started = time.monotonic()
    miss = await ask(rt, await new_user())  # still answered: from LocalAI, the cache is off
    assert time.monotonic() - started < 3
    assert miss.run.replay is None and standin.requests == 2
    report = await get_health()
    assert report["status"] == "degraded"
    assert report["redis"]["configured"] is True and report["redis"]["ok"] is False
    assert report["redis"]["error"] and report["localai"]["ok"] is True

    # Limits still hold, in-process: this user's 3 per minute (the count starts afresh without Redis).
    limited = await new_user()
    for _ in range(3):
        await ask(rt, limited, "Hello")
    with pytest.raises(LimitExceeded) as info:
        await ask(rt, limited, "Hello")
    assert info.value.code == "rate_limit"
    rt.catalog.fetched_at = 0.0  # the model list is due for a refresh: it comes from LocalAI directly
    assert MODEL in await rt.catalog.get()
    await asyncio.sleep(RETRY_AFTER + 0.1)  # the breaker re-probes (and fails again) without a new warning
    await ask(rt, await new_user())
    assert warnings_with(caplog, "Redis unavailable") == 1

    redis_server.start()  # ------------------------------------------ back on the same port (empty: no persistence)
    await asyncio.sleep(RETRY_AFTER + 0.1)
    back_user = await new_user()
    await ask(rt, back_user)  # a miss: the restarted Redis is empty; the answer is stored again
    assert await redis_client.exists(f"rubin:rl:user:{back_user}") == 1  # the limiter counts in Redis again
    hit = await ask(rt, back_user)  # the same user asks again (the cache is per user): answered from Redis
    assert hit.run.replay is not None and standin.requests == 7
    assert warnings_with(caplog, "Redis is back") == 1
    assert warnings_with(caplog, "Redis unavailable") == 1
    report = await get_health()
    assert report["status"] == "ok" and report["redis"] == {"configured": True, "ok": True}
    rt.catalog.fetched_at = 0.0
    assert MODEL in await rt.catalog.get()
    await until(lambda: redis_client.exists("rubin:models"))  # shared with the other workers again


async def test_a_follower_ends_quietly_while_redis_is_away(
    make_redis_runtime: RuntimeFactory, redis_server: RedisServer
) -> None:
    worker_a, worker_b = await make_redis_runtime(), await make_redis_runtime()
    assert worker_a.redis is not None
    worker_a.redis.retry_after = RETRY_AFTER
    redis_server.stop()
    user_id = await new_user()
    started = await ask(worker_a, user_id, "[[tokens=30]] Hello")  # publishing fails quietly
    await worker_a.relay.close()
    began = time.monotonic()
    pieces = [p async for p in worker_b.relay.follow(started.messages[1].id, idle_timeout=5)]
    assert pieces == [] and time.monotonic() - began < 2  # no hang: the tab shows the saved answer instead


async def test_a_stream_with_a_gap_is_not_completed(
    make_redis_runtime: RuntimeFactory, redis_server: RedisServer, redis_client
) -> None:
    worker_a = await make_redis_runtime(stream_coalesce_ms=1000)  # one entry a second: Redis goes away between two
    store = worker_a.redis
    assert store is not None
    store.retry_after = RETRY_AFTER
    user_id = await new_user()
    started = await chat_flow.send_message(
        worker_a, user_id=user_id, conversation_id=None, text="[[tokens=200]] [[rate=60]] Hi", model=MODEL
    )
    key = f"rubin:run:{started.messages[1].id}"
    await until(lambda: redis_client.exists(key))
    redis_server.stop()
    assert not await store.ping()  # the breaker notices (health, a limit check...) while the answer streams
    await asyncio.sleep(0.3)
    redis_server.start()  # back before the answer ends, but empty: the entries so far are lost
    await asyncio.sleep(RETRY_AFTER + 0.05)
    assert await store.ping()
    assert not started.run.finished
    assert await started.run.wait_done(timeout=10)
    await worker_a.relay.close()
    worker_b = await make_redis_runtime()
    received = [t async for t, _ in worker_b.relay.follow(started.messages[1].id, idle_timeout=1)]
    # Whatever a follower gets must be the answer's beginning, never text with a hole in it.
    assert started.run.text.startswith("".join(received))
