"""A knowledge "world" for the service and job tests: settings on the test database (SQLite and PostgreSQL), users,
bases, uploads through the app's own upload path, and an ingestion job made of the stand-in parts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app import config as config_module
from rubin_app.config import Settings
from rubin_app.knowledge import service, uploads
from rubin_app.knowledge.jobs import IngestionJob
from rubin_app.knowledge.models import KnowledgeBase, KnowledgeChunk, KnowledgeFile
from rubin_app.models import Role
from rubin_app.services import db as db_module
from tests.factories import make_account
from tests.fakes.localai_standin import StandIn
from tests.knowledge._parts import Embedder, MemoryIndex, make_parts


@dataclass
class World:
    settings: Settings
    db_url: str
    index: MemoryIndex
    embedder: Embedder

    @asynccontextmanager
    async def scope(self) -> AsyncIterator[AsyncSession]:
        async with db_module.session_scope(self.db_url) as session:
            yield session

    def job(self, embedder: Any = "default", **options: Any) -> IngestionJob:
        """An ingestion job on this world's database with the stand-in parts (one per "worker")."""
        chosen = self.embedder if embedder == "default" else embedder
        return IngestionJob(self.settings, self.scope, make_parts(chosen, self.index), poll_seconds=0.05, **options)

    async def user(self, email: str, role: Role = Role.user) -> int:
        async with self.scope() as session:
            user = await make_account(session, email=email, role=role)
            assert user.id is not None
            return user.id

    async def base(self, user_id: int, name: str = "Docs") -> int:
        async with self.scope() as session:
            base = await service.create_base(session=session, user_id=user_id, name=name)
            assert base.id is not None
            return base.id

    async def upload(self, user_id: int, kb_id: int, name: str, data: bytes) -> int:
        async def content() -> AsyncIterator[bytes]:
            yield data

        row = await uploads.enqueue(
            scope=self.scope, settings=self.settings, user_id=user_id, kb_id=kb_id, filename=name, content=content()
        )
        assert row.id is not None
        return row.id

    async def file(self, file_id: int) -> KnowledgeFile | None:
        async with self.scope() as session:
            return await session.get(KnowledgeFile, file_id)

    async def kb(self, kb_id: int) -> KnowledgeBase | None:
        async with self.scope() as session:
            return await session.get(KnowledgeBase, kb_id)

    async def chunks(self, file_id: int) -> list[KnowledgeChunk]:
        async with self.scope() as session:
            stmt = select(KnowledgeChunk).where(KnowledgeChunk.file_id == file_id).order_by(col(KnowledgeChunk.ordinal))
            return list((await session.exec(stmt)).all())

    def stored(self) -> list[str]:
        """Names in the uploads folder."""
        return sorted(p.name for p in uploads.upload_dir(self.settings).iterdir())


@pytest.fixture
async def world(app_env: Callable[..., None], db_url: str, standin: StandIn) -> AsyncIterator[World]:
    """A world on a fresh database of each kind; the embedder asks the LocalAI stand-in."""
    app_env(database_url=db_url)
    settings = config_module.get_settings()
    embedder = Embedder(standin.url)
    yield World(settings=settings, db_url=db_url, index=MemoryIndex(), embedder=embedder)
