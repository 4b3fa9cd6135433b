"""The database engine: async SQLAlchemy on SQLite (WAL) or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.config import get_settings

_engines: dict[str, AsyncEngine] = {}
_makers: dict[str, async_sessionmaker[AsyncSession]] = {}
_read_makers: dict[str, async_sessionmaker[AsyncSession]] = {}
BUSY_TIMEOUT_MS = 15_000  # how long an SQLite write waits for the lock, unless a session says less
LOCK_WAIT_OPTION = "rubin_lock_wait_ms"  # execution option: this transaction's lock wait (session_scope)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()
    # Transactions start with BEGIN IMMEDIATE (below) instead of the driver's deferred BEGIN: a
    # transaction that reads and then writes would otherwise fail at once with "database is locked"
    # when another process (a second worker) committed in between — the busy timeout cannot help there.
    dbapi_conn.isolation_level = None


def _begin_immediate(conn) -> None:
    wait = conn.get_execution_options().get(LOCK_WAIT_OPTION)
    if wait is None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return
    # Only BEGIN IMMEDIATE waits for the write lock; once taken, the usual timeout is back for the connection.
    conn.exec_driver_sql(f"PRAGMA busy_timeout={int(wait)}")
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _begin_deferred(conn) -> None:
    conn.exec_driver_sql("BEGIN")


def make_engine(url: str, *, read_only: bool = False) -> AsyncEngine:
    """Create an async engine with sane pool and SQLite settings.

    On SQLite, `read_only` engines take no write lock: their transactions start deferred, and WAL
    readers never wait for a writer. (PRAGMA query_only is not used: it leaves the WAL locked.)
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Readers run side by side (WAL): enough of them that a burst of answers (20 tabs sending at once) does not
        # queue for a connection; the writers' own pool stays small (SQLite has one writer at a time anyway).
        pool = {"pool_size": 20, "max_overflow": 20} if read_only else {}
        engine = create_async_engine(url, connect_args={"timeout": 10}, **pool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _begin_deferred if read_only else _begin_immediate)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def get_engine(url: str | None = None) -> AsyncEngine:
    """The process-wide engine for a URL (the settings' URL by default)."""
    url = url or get_settings().async_database_url
    if url not in _engines:
        from rubin_app.vault import orm  # the content columns' encryption hooks, before any flush

        orm.install()
        _engines[url] = make_engine(url)
        _makers[url] = async_sessionmaker(_engines[url], class_=AsyncSession, expire_on_commit=False)
    return _engines[url]


def _read_maker(url: str) -> async_sessionmaker[AsyncSession]:
    if url not in _read_makers:
        if url.startswith("sqlite") and ":memory:" not in url:
            engine = make_engine(url, read_only=True)
            _engines[url + "#read"] = engine
            _read_makers[url] = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        else:  # PostgreSQL readers never block writers anyway
            get_engine(url)
            _read_makers[url] = _makers[url]
    return _read_makers[url]


@asynccontextmanager
async def session_scope(
    url: str | None = None, *, read_only: bool = False, lock_timeout: float | None = None
) -> AsyncIterator[AsyncSession]:
    """A session that commits on success and rolls back on error.

    `read_only` sessions (the hot reads: chat lists, a message's status, a session cookie) never queue
    behind SQLite's write lock; never write through one (with another writer about it may fail).
    `lock_timeout` (seconds) bounds how long the transaction waits for a lock (SQLite's write lock,
    PostgreSQL's row and table locks) before it fails, instead of 15 s (SQLite) or for ever (PostgreSQL).
    """
    url = url or get_settings().async_database_url
    get_engine(url)
    async with (_read_maker(url) if read_only else _makers[url])() as session:
        try:
            if lock_timeout is not None and not read_only:
                wait_ms = max(1, int(lock_timeout * 1000))
                if url.startswith("sqlite"):
                    await session.connection(execution_options={LOCK_WAIT_OPTION: wait_ms})
                else:
                    await (await session.connection()).exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms}")
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def dispose_all() -> None:
    """Close every engine (tests, shutdown)."""
    for engine in list(_engines.values()):
        await engine.dispose()
    _engines.clear()
    _makers.clear()
    _read_makers.clear()
