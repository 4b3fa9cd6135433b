"""Schema migrations through alembic, safe when several workers start at once."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool, text

from rubin_app.config import PROJECT_DIR, get_settings

LOCK_ID = 72_657_101  # any constant: the PostgreSQL advisory lock guarding migrations


def alembic_config(url: str | None = None) -> Config:
    """Alembic config for the project, optionally for another database URL."""
    cfg = Config(str(PROJECT_DIR / "alembic" / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_DIR / "alembic"))
    # Split prepend_sys_path on os.pathsep only: the legacy default also splits on spaces and is deprecated.
    if cfg.get_main_option("path_separator") is None:
        cfg.set_main_option("path_separator", "os")
    if url:
        cfg.attributes["url"] = url
    cfg.attributes["configure_logger"] = False
    return cfg


@contextmanager
def _exclusive(url: str) -> Iterator[None]:
    """One migrator at a time: a file lock next to a SQLite database, an advisory lock on PostgreSQL."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///") + ".migrate.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    if url.startswith("postgresql"):
        engine = create_engine(url, poolclass=pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": LOCK_ID})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": LOCK_ID})
        finally:
            engine.dispose()
        return
    yield


def upgrade_head(url: str | None = None) -> None:
    """Bring the database to the newest schema (workers starting together wait for each other)."""
    with _exclusive(url or get_settings().sync_database_url):
        command.upgrade(alembic_config(url), "head")
