"""Schema migrations through alembic, safe when several workers start at once.

A start with nothing to migrate does not import alembic (with mako and pygments, ~10 MB and about half a second):
the database's revision is compared with the newest one named in alembic/versions first.
"""

from __future__ import annotations

import ast
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, inspect, pool, text
from sqlalchemy.exc import SQLAlchemyError

from rubin_app.config import PROJECT_DIR, get_settings

if TYPE_CHECKING:
    from alembic.config import Config

LOCK_ID = 72_657_101  # any constant: the PostgreSQL advisory lock guarding migrations


def alembic_config(url: str | None = None) -> Config:
    """Alembic config for the project, optionally for another database URL."""
    from alembic.config import Config

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


def _revision_names(path: Path) -> tuple[str | None, object]:
    """`revision` and `down_revision` of one migration file, read without running it."""
    names: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and target.id in {"revision", "down_revision"} and value is not None:
            names[target.id] = ast.literal_eval(value)
    revision = names.get("revision")
    return (revision if isinstance(revision, str) else None), names.get("down_revision")


def script_heads(versions: Path | None = None) -> set[str]:
    """The newest revision(s) of alembic/versions (empty when a file cannot be read this way)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((versions or PROJECT_DIR / "alembic" / "versions").glob("*.py")):
        try:
            revision, down = _revision_names(path)
        except (OSError, SyntaxError, ValueError):
            return set()
        if revision is None:
            return set()
        revisions.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):
            parents.update(d for d in down if isinstance(d, str))
    return revisions - parents


def is_current(url: str) -> bool:
    """Whether the database is at the newest revision already (False when unsure: then alembic decides)."""
    heads = script_heads()
    if not heads:
        return False
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return False
            return {str(row[0]) for row in conn.execute(text("SELECT version_num FROM alembic_version"))} == heads
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def upgrade_head(url: str | None = None) -> None:
    """Bring the database to the newest schema (workers starting together wait for each other)."""
    target = url or get_settings().sync_database_url
    if is_current(target):
        return
    from alembic import command

    with _exclusive(target):
        command.upgrade(alembic_config(url), "head")
