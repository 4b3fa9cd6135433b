"""A Redis error that is not "Redis is away" is a bug to see, not an outage to ride out.

With a real redis-server: a Lua script error or a WRONGTYPE reaches the caller and is logged at ERROR
with Redis's message, and the breaker stays closed (health says ok, the next call uses Redis); a stopped
server still degrades. The same for the breaker of Reflex's own Redis use (state and token managers).
"""

from __future__ import annotations

import json
import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from starlette.requests import Request

from rubin_app.api.routes import health
from rubin_app.services.runtime import Runtime
from rubin_app.state.resilient.guard import RedisGuard, make_client
from tests.fakes.redis_server import RedisServer


async def get_health() -> dict:
    response = await health(Request({"type": "http", "method": "GET", "path": "/api/health", "headers": []}))
    return json.loads(bytes(response.body))


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]


def outage_warnings(caplog: pytest.LogCaptureFixture) -> int:
    return sum("Redis unavailable" in r.getMessage() for r in caplog.records)


async def test_a_script_error_is_raised_and_logged_and_redis_stays_in_use(
    redis_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    store = redis_runtime.redis
    assert store is not None

    async def broken(client) -> object:
        return await client.eval("return redis.call('NOSUCHCOMMAND', KEYS[1])", 1, store.key("x"))

    with pytest.raises(ResponseError):
        await store.run(broken, lambda: "fallback")  # not silently replaced by the fallback
    assert store.up and not store.last_error
    logged = errors(caplog)
    assert len(logged) == 1 and "Redis refused a command (ResponseError)" in logged[0]
    assert "Unknown Redis command" in logged[0] or "unknown command" in logged[0].lower()
    assert outage_warnings(caplog) == 0
    assert await store.ping() and (await get_health())["status"] == "ok"


async def test_wrongtype_in_a_limit_is_raised_and_the_limits_stay_shared(
    redis_runtime: Runtime, redis_client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    await redis_client.set("rubin:rl:user:7", "not a sorted set")  # e.g. a key written by a buggy release
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await redis_runtime.limiter.hit("user:7", 5)
    logged = errors(caplog)
    assert len(logged) == 1 and "WRONGTYPE" in logged[0]
    assert redis_runtime.redis is not None and redis_runtime.redis.up
    assert (await get_health())["redis"] == {"configured": True, "ok": True}
    assert await redis_runtime.limiter.hit("user:8", 5) == (True, 0.0)
    assert await redis_client.exists("rubin:rl:user:8") == 1  # counted in Redis, not in this process
    assert outage_warnings(caplog) == 0


async def test_a_stopped_server_still_degrades(
    redis_runtime: Runtime, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    store = redis_runtime.redis
    assert store is not None
    redis_server.stop()
    assert await redis_runtime.limiter.hit("user:9", 5) == (True, 0.0)  # the in-process fallback
    assert not store.up and store.last_error
    report = await get_health()
    assert report["status"] == "degraded" and report["redis"]["ok"] is False
    assert outage_warnings(caplog) == 1 and errors(caplog) == []


async def test_reflex_state_client_trips_only_on_connection_errors(
    redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    guard = RedisGuard(make_client(redis_url, 1.0), retry_after=60)
    client = make_client(redis_url, 1.0, guard)
    try:
        await client.set("state-key", "pickled state")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await client.hget("state-key", "field")
        assert guard.up and guard.outages == 0
        logged = errors(caplog)
        assert len(logged) == 1 and "Redis refused HGET (ResponseError)" in logged[0] and "WRONGTYPE" in logged[0]
        assert await client.get("state-key") == b"pickled state"

        redis_server.stop()
        with pytest.raises(RedisConnectionError):
            await client.get("state-key")
        assert not guard.up and guard.outages == 1
        assert len(errors(caplog)) == 1  # an outage is a warning, not an error
    finally:
        await client.aclose()
        await guard.close()
