"""Fixtures for the webhook tests: settings, users, a real HTTP receiver on loopback, dispatchers.

The database is the project's migrated SQLite or PostgreSQL (`db_url`, from tests/conftest.py); the
receiver is a real HTTP server (tests/webhooks/receiver.py); dispatchers send over real sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.config import Settings
from rubin_app.models import Role
from rubin_app.services.db import session_scope
from rubin_app.webhooks.delivery import WebhookDispatcher
from rubin_app.webhooks.schemas import EndpointCreate, EndpointWithSecret
from rubin_app.webhooks.service import Actor, create_endpoint
from tests.factories import make_account
from tests.webhooks.receiver import Receiver

SECRET_KEY = "test-secret-key-for-webhooks-0123456789abcdef"

# Loopback receivers are reached with WEBHOOK_ALLOW_PRIVATE on, unless a test says otherwise.
FAST = {
    "webhook_allow_private": True,
    "webhook_retry_schedule": "0,0.3,0.6",
    "webhook_timeout_seconds": 3,
    "webhook_poll_seconds": 0.2,
}

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def wh_settings(make_settings: Callable[..., Settings]) -> SettingsFactory:
    """Factory: Settings for webhook tests (fast schedule, private targets allowed) with overrides."""

    def make(**overrides: Any) -> Settings:
        return make_settings(**{**FAST, **overrides})

    return make


@pytest.fixture
def scope(db_url: str) -> Callable[[], Any]:
    """`async with scope() as session:` — a committing session on the test database."""

    @asynccontextmanager
    async def open_scope() -> AsyncIterator[AsyncSession]:
        async with session_scope(db_url) as session:
            yield session

    return open_scope


@pytest.fixture
def new_actor(scope: Callable[[], Any]) -> Callable[..., Any]:
    """Factory: a fresh account (an admin with admin=True) as an Actor."""
    count = 0

    async def make(*, admin: bool = False) -> Actor:
        nonlocal count
        count += 1
        async with scope() as s:
            user = await make_account(s, email=f"user{count}@example.com", role=Role.admin if admin else Role.user)
        return Actor.of(user)

    return make


@pytest.fixture
def new_endpoint(scope: Callable[[], Any], wh_settings: SettingsFactory) -> Callable[..., Any]:
    """Factory: an endpoint of `actor` for `url` (events "*" unless given), created through the service."""

    async def make(actor: Actor, url: str, **fields: Any) -> EndpointWithSecret:
        async with scope() as s:
            return await create_endpoint(
                s, actor=actor, settings=wh_settings(), secret_key=SECRET_KEY, data=EndpointCreate(url=url, **fields)
            )

    return make


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1."""
    server = await Receiver().start()
    yield server
    await server.close()


@pytest.fixture
async def dispatchers(db_url: str, wh_settings: SettingsFactory) -> AsyncIterator[Callable[..., WebhookDispatcher]]:
    """Factory of dispatchers on the test database (settings overrides as keywords); all stopped afterwards."""
    made: list[WebhookDispatcher] = []

    def make(*, lease_seconds: float | None = None, batch_size: int = 20, **overrides: Any) -> WebhookDispatcher:
        dispatcher = WebhookDispatcher(
            wh_settings(**overrides),
            secret_key=SECRET_KEY,
            database_url=db_url,
            lease_seconds=lease_seconds,
            batch_size=batch_size,
        )
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        await dispatcher.stop()
