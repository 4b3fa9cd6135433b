"""Fixtures for the knowledge index tests: the same cases on SQLite (FTS5 + sqlite-vec) and on a real
PostgreSQL 16 with pgvector (tests/knowledge/pgvector_server.py: the PyPI package `pgserver`'s binaries)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rubin_app.knowledge.index import KnowledgeIndex, close_indexes, knowledge_index
from rubin_app.services import db as db_module
from rubin_app.services.migrate import upgrade_head
from tests.conftest import _pg_connect, async_url, free_port
from tests.knowledge.pgvector_server import PgvectorServer


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[int]:
    """A throwaway PostgreSQL 16 cluster with the `vector` extension available; yields its port."""
    try:
        server = PgvectorServer(free_port())
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server.port
    finally:
        server.stop()


@pytest.fixture
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Factory: a migrated empty database ("sqlite", "pgvector" or "postgresql" = Debian's, no pgvector);
    returns its ASYNC url."""
    created: list[tuple[int, str]] = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path / f'rubin-{uuid.uuid4().hex[:8]}.db'}"
        else:
            fixture = "pgvector_server" if kind == "pgvector" else "postgres_server"
            port: int = request.getfixturevalue(fixture)
            name = f"k_{uuid.uuid4().hex}"
            with _pg_connect(port) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            created.append((port, name))
            url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"
        upgrade_head(url)
        return async_url(url)

    yield make
    for port, name in created:
        with _pg_connect(port) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "pgvector"])
async def kdb_url(request: pytest.FixtureRequest, fresh_database: Callable[[str], str]) -> AsyncIterator[str]:
    """ASYNC url of a fresh migrated database: SQLite, then PostgreSQL with pgvector."""
    url = fresh_database(request.param)
    try:
        yield url
    finally:
        await close_indexes()
        await db_module.dispose_all()


@pytest.fixture
def index(kdb_url: str) -> KnowledgeIndex:
    """The knowledge index of the test database."""
    return knowledge_index(kdb_url)


@pytest.fixture
def scope(kdb_url: str) -> Callable[[], Any]:
    """`async with scope() as session:` on the test database (commits on success)."""
    return lambda: db_module.session_scope(kdb_url)
