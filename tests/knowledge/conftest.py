"""Fixtures for the knowledge index tests: the same cases on SQLite (FTS5 + sqlite-vec) and on a real
PostgreSQL 16 with pgvector (the server binaries of the PyPI package `pgserver`, run like tests/conftest.py's
Debian PostgreSQL: initdb + pg_ctl as the `postgres` user when the tests run as root)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rubin_app.knowledge.index import KnowledgeIndex, close_indexes, knowledge_index
from rubin_app.services import db as db_module
from rubin_app.services.migrate import upgrade_head
from tests.conftest import _pg_connect, _run_pg, async_url, free_port


def _pgserver_bindir() -> Path:
    spec = importlib.util.find_spec("pgserver")  # located, not imported: importing it starts nothing we use
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the PyPI package pgserver is not installed (requirements-dev.txt)", pytrace=False)
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bindir / "initdb").exists():
        pytest.fail(f"pgserver's PostgreSQL binaries are missing under {bindir}", pytrace=False)
    return bindir


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[int]:
    """A throwaway PostgreSQL 16 cluster with the `vector` extension available; yields its port."""
    bindir = _pgserver_bindir()
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="rubin-pgvector-"))
    if as_root:
        import pwd

        user = pwd.getpwnam("postgres")  # the Debian postgresql package's user (scripts/test.sh installs it)
        os.chown(base, user.pw_uid, user.pw_gid)
    data, port = base / "data", free_port()
    started = False
    try:
        _run_pg(
            [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "--no-sync", "-U", "postgres"], as_postgres=as_root
        )
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        _run_pg(
            [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w", "start"],
            as_postgres=as_root,
        )
        started = True
        yield port
    finally:
        if started:
            stop = [str(bindir / "pg_ctl"), "-D", str(data), "stop", "-m", "immediate"]
            prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
            subprocess.run([*prefix, *stop], capture_output=True, timeout=60, check=False)
        shutil.rmtree(base, ignore_errors=True)


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
