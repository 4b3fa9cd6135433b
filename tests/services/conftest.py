"""Fixtures for the service tests: a committing session on the test database (`scope`), and Redis:
one real redis-server per session, emptied before every test.

Tests may stop the server (Redis "goes away") and start it again on the same port; the fixtures make
sure it runs and is empty again for the next test.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime
from tests.fakes.redis_server import RedisServer

RuntimeFactory = Callable[..., Awaitable[Runtime]]


def _flushall(server: RedisServer) -> None:
    """FLUSHALL over raw RESP (no client library, so no event loop is involved)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        reply = sock.recv(64)
    assert reply.startswith(b"+OK"), reply


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole session, on a free loopback port."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the session's redis-server, running and empty at the start of the test."""
    if not redis_server.ping():
        redis_server.start()
    _flushall(redis_server)
    yield redis_server.url
    if not redis_server.ping():  # a test stopped it: the next test gets it back
        redis_server.start()


async def close_runtimes(runtimes: list[Runtime]) -> None:
    """Stop the runtimes' answers, let their relay publishers finish and close their Redis pools."""
    for rt in runtimes:
        await rt.generation.shutdown()
        await rt.usage.close()
        await rt.bus.close()
        await rt.relay.close()
        if rt.redis is not None:
            await rt.redis.close()


@pytest.fixture
async def make_redis_runtime(make_runtime: RuntimeFactory, redis_url: str) -> AsyncIterator[RuntimeFactory]:
    """Factory of Runtimes with REDIS_URL set (several calls = several workers sharing Redis and the database)."""
    made: list[Runtime] = []

    async def make(**overrides: Any) -> Runtime:
        rt = await make_runtime(redis_url=redis_url, **overrides)
        made.append(rt)
        return rt

    yield make
    await close_runtimes(made)


@pytest.fixture
async def redis_runtime(make_redis_runtime: RuntimeFactory) -> Runtime:
    """A Runtime with Redis and the default test settings."""
    return await make_redis_runtime()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Any]:
    """A plain client on the test Redis, to look at the keys the app wrote."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, socket_timeout=2)
    yield client
    await client.aclose()


@pytest.fixture
def scope(db_url: str):
    """`async with scope() as session:` — a committing session on the test database."""

    @asynccontextmanager
    async def open_scope() -> AsyncIterator[AsyncSession]:
        async with session_scope(db_url) as session:
            yield session

    return open_scope
