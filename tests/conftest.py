"""Root fixtures: a real LocalAI stand-in on loopback, real SQLite files and a real PostgreSQL server.

Nothing is mocked. Service code reads its settings from the environment through
`rubin_app.config.get_settings()`, so the fixtures point it at the test database and the stand-in by
setting environment variables and clearing the process-wide caches.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rubin_app import config as config_module
from rubin_app.services import db as db_module
from rubin_app.services import runtime as runtime_module
from rubin_app.services.migrate import upgrade_head
from rubin_app.vault.service import reset_vault
from tests.fakes.localai_standin import StandIn, StandInConfig
from tests.hang_report import (  # noqa: F401  (hooks: a test that ran out of time says what it waited for)
    pytest_runtest_makereport,
    pytest_timeout_set_timer,
    task_stacks,
)

PG_DATABASE = "rubin_test"


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sync_url(async_url: str) -> str:
    """The synchronous twin of an async database URL (alembic needs one)."""
    return async_url.replace("sqlite+aiosqlite://", "sqlite://")


def async_url(url: str) -> str:
    """The async twin of a synchronous database URL."""
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


# --------------------------------------------------------------------------- LocalAI stand-in


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    """One LocalAI stand-in for the whole session, on a free loopback port."""
    server = StandIn(StandInConfig()).start()
    try:
        yield server
    finally:
        server.stop()


def _settle(server: StandIn, timeout: float = 3.0) -> bool:
    """Wait until the stand-in has finished with every request (so counters cannot leak into the next test)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.active_streams == 0 and all(r.outcome != "pending" for r in server.records):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _fresh_standin(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test that uses the stand-in starts and ends with a default one and zeroed counters.

    Torn down after the test's own fixtures (clients, runtimes) have closed their connections. Tests that
    do not use the stand-in (e.g. the self-contained e2e suite) are left alone.
    """
    if "standin" not in request.fixturenames:
        yield
        return
    server: StandIn = request.getfixturevalue("standin")
    server.config = StandInConfig()
    server.reset()
    yield
    settled = _settle(server)
    busy = [r for r in server.records if r.outcome == "pending"]
    server.config = StandInConfig()
    server.reset()
    if not settled:
        # A request still running after the test means something forgot to close it (Stop did not stop).
        pytest.fail(f"the stand-in is still answering after the test: {busy or 'streams open'}", pytrace=False)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bindir() -> Path:
    """Directory of initdb/pg_ctl: the newest /usr/lib/postgresql/*/bin, else PATH; fail loudly if absent."""

    def version(path: str) -> int:
        name = Path(path).parent.name
        return int(name) if name.isdigit() else 0

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).parent
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH. "
        "Install them (e.g. `apt-get install postgresql`): the PostgreSQL tests need a real server.",
        pytrace=False,
    )


def _run_pg(cmd: list[str], *, as_postgres: bool) -> None:
    full = ["runuser", "-u", "postgres", "--", *cmd] if as_postgres else cmd
    result = subprocess.run(full, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd[:2])} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}", pytrace=False
        )


def _pg_connect(port: int, dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname, autocommit=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[int]:
    """A throwaway PostgreSQL cluster on a free port (fsync off); yields the port."""
    bindir = _pg_bindir()
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="rubin-pg-"))
    if as_root:
        import pwd

        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            pytest.fail("running as root but there is no `postgres` user to run the PostgreSQL server", pytrace=False)
        os.chown(base, pg_user.pw_uid, pg_user.pw_gid)
    data = base / "data"
    port = free_port()
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
            subprocess.run(
                [
                    *(["runuser", "-u", "postgres", "--"] if as_root else []),
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "stop",
                    "-m",
                    "immediate",
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: int) -> str:
    """URL of an (empty) database `rubin_test` on the throwaway cluster."""
    with _pg_connect(postgres_server) as conn:
        conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    return f"postgresql+psycopg://postgres@127.0.0.1:{postgres_server}/{PG_DATABASE}"


@pytest.fixture
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Factory: a fresh, empty database of a kind ("sqlite" / "postgresql"); returns its SYNC url."""
    created: list[tuple[int, str]] = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / f'rubin-{uuid.uuid4().hex[:8]}.db'}"
        if kind == "postgresql":
            port: int = request.getfixturevalue("postgres_server")
            request.getfixturevalue("postgres_url")
            name = f"t_{uuid.uuid4().hex}"
            with _pg_connect(port) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            created.append((port, name))
            return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"
        raise ValueError(kind)

    yield make
    for port, name in created:  # engines are disposed by now; FORCE ends any straggling connection
        with _pg_connect(port) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, empty_database: Callable[[str], str]) -> AsyncIterator[str]:
    """ASYNC url of a fresh database per test, its schema built by the project's alembic migrations."""
    url = empty_database(request.param)
    upgrade_head(url)
    try:
        yield async_url(url)
    finally:
        await db_module.dispose_all()


# --------------------------------------------------------------------------- settings and runtime


def _clear_caches() -> None:
    config_module.get_settings.cache_clear()
    runtime_module._runtime = None
    reset_vault()


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, standin: StandIn) -> Callable[..., None]:
    """Isolated settings: no .env, stand-in URL, fast timeouts. Call it with overrides (field=value)."""
    monkeypatch.chdir(tmp_path)  # no developer .env leaks in
    for name in config_module.Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    defaults: dict[str, Any] = {
        "localai_url": standin.url,
        "data_dir": str(tmp_path / "data"),
        "llm_connect_timeout": 2,
        "llm_read_timeout": 5,
        "llm_retries": 0,
        "llm_retry_backoff": 0.01,
        "title_mode": "first_message",
        "db_flush_seconds": 0.05,
        "models_cache_ttl": 60,
    }

    def apply(**overrides: Any) -> None:
        for name, value in {**defaults, **overrides}.items():
            if value is None:
                monkeypatch.delenv(name.upper(), raising=False)
            else:
                monkeypatch.setenv(name.upper(), str(value))
        _clear_caches()

    apply()
    yield apply
    _clear_caches()


@pytest.fixture
async def make_runtime(
    app_env: Callable[..., None], db_url: str
) -> AsyncIterator[Callable[..., Awaitable[runtime_module.Runtime]]]:
    """Factory of Runtimes wired to the stand-in and the test database; everything is closed afterwards."""
    made: list[runtime_module.Runtime] = []
    tasks_before = asyncio.all_tasks()

    async def make(**overrides: Any) -> runtime_module.Runtime:
        app_env(database_url=db_url, **overrides)
        rt = runtime_module.Runtime(config_module.get_settings())
        runtime_module._runtime = rt
        made.append(rt)
        return rt

    yield make
    for rt in made:
        await rt.generation.shutdown()
        await rt.usage.close()  # its batch writer and the worker bus are long-lived tasks: stopped here
        await rt.bus.close()
    # Background work the test started (e.g. automatic titles) may finish, then is cancelled.
    leftover = asyncio.all_tasks() - tasks_before - {asyncio.current_task()}
    if leftover:
        _, pending = await asyncio.wait(leftover, timeout=5)
        for task in pending:
            task.cancel()
        _, ignored = await asyncio.wait(pending, timeout=10) if pending else (set(), set())
        # A task that outlives its cancel() would hold a worker's shutdown forever: fail, saying where it waits.
        assert not ignored, f"tasks ignored their cancellation:\n{task_stacks(list(ignored))}"
    for rt in made:
        await rt.client.aclose()
    _clear_caches()
    await db_module.dispose_all()


@pytest.fixture
async def runtime(make_runtime: Callable[..., Awaitable[runtime_module.Runtime]]) -> runtime_module.Runtime:
    """A fresh Runtime with the default test settings."""
    return await make_runtime()


# --------------------------------------------------------------------------- accounts, sessions, audit (appended)


@pytest.fixture
def db_scope(db_url: str) -> Callable[[], Any]:
    """`async with db_scope() as session:` — a session on the test database that commits on success."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def open_scope() -> AsyncIterator[Any]:
        async with db_module.session_scope(db_url) as session:
            yield session

    return open_scope


@pytest.fixture
def make_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., config_module.Settings]:
    """Factory: Settings from keyword arguments only (no environment variables, no .env file)."""
    for name in config_module.Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)

    def make(**values: Any) -> config_module.Settings:
        return config_module.Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make
