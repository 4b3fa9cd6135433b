"""The database part of a backup: a consistent online copy, what it holds, and putting it back.

SQLite: the sqlite3 backup API in one step (a WAL reader: writers go on, the copy is one instant).
PostgreSQL: a REPEATABLE READ transaction exports its snapshot; `pg_dump --snapshot` (custom format) and the
row counts read that same snapshot. Restore: SQLite replaces the (empty) database file; PostgreSQL turns the
dump into SQL with `pg_restore` and applies it with `psql` in ONE transaction that first empties the schema
(an error rolls everything back).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from rubin_app.vault.models import UserKey

# "Empty": no account and no chat. Other tables (settings rows, audit rows of a first start) may hold rows.
EMPTY_TABLES = ("users", "conversations")
_PG_TABLES = (
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
)
_KEY_TABLE = UserKey.__tablename__
_KEY_SAMPLES = (
    "SELECT kek_id, user_id, wrapped FROM user_keys WHERE id IN (SELECT min(id) FROM user_keys GROUP BY kek_id)"
)


class DatabaseError(Exception):
    """The database cannot be dumped or restored here: the message says why and what to do."""


@dataclass
class Snapshot:
    """What a dump holds: kind, alembic revision, rows per table, one wrapped data key per KEK id."""

    kind: str
    revision: str | None
    tables: dict[str, int]
    key_samples: list[dict[str, Any]] = field(default_factory=list)
    client: str = ""  # pg_dump's version (PostgreSQL)


def kind_of(url: str) -> str:
    """'sqlite' or 'postgresql' for a database URL."""
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def sqlite_path(url: str) -> Path:
    """The file of a sqlite:/// URL."""
    return Path(url.split("///", 1)[-1])


def _count(cur: Any, table: str) -> int:
    """Rows of a table named by the database's own catalog (quoted; never a name from input)."""
    quoted = '"' + table.replace('"', '""') + '"'
    return int(cur.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])


def _inspect(cur: Any, tables: list[str]) -> Snapshot:
    counts = {name: _count(cur, name) for name in sorted(tables)}
    revision = None
    if "alembic_version" in tables:
        row = cur.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    samples: list[dict[str, Any]] = []
    if _KEY_TABLE in tables:  # one wrapped data key per key-encryption key: what a restore must be able to open
        rows = cur.execute(_KEY_SAMPLES).fetchall()
        samples = [{"kek_id": kid, "user_id": int(uid), "wrapped": wrapped} for kid, uid, wrapped in sorted(rows)]
    return Snapshot(kind="", revision=revision, tables=counts, key_samples=samples)


def inspect_sqlite(path: Path) -> Snapshot:
    """Rows per table, revision and key samples of a SQLite file (reads only; a read-write connection, so
    that closing it leaves no -wal/-shm files behind)."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        cur = conn.cursor()
        # Virtual tables are left out (their rows live in shadow tables, which are counted): the knowledge
        # index's vec0 tables need an extension this sqlite3 cannot load (rubin_app/knowledge/index_sqlite.py).
        rows = cur.execute("SELECT name FROM sqlite_master WHERE type='table' AND sql NOT LIKE 'CREATE VIRTUAL%'")
        names = [r[0] for r in rows.fetchall()]
        snap = _inspect(cur, [n for n in names if not n.startswith("sqlite_")])
    finally:
        conn.close()
    snap.kind = "sqlite"
    return snap


def dump_sqlite(url: str, dest: Path) -> Snapshot:
    """A consistent copy of a live SQLite database into `dest` (the backup API, one step)."""
    path = sqlite_path(url)
    if not path.exists():
        raise DatabaseError(f"no database at {path}: nothing to back up")
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst, pages=-1)  # one step: a single read transaction, so one instant of the database
    finally:
        dst.close()
        src.close()
    return inspect_sqlite(dest)


# --------------------------------------------------------------------------- PostgreSQL


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """(a conninfo without the password, the environment carrying it) for pg_dump, pg_restore and psql."""
    parsed = make_url(url)
    parts = {"host": parsed.host or "", "port": str(parsed.port or ""), "user": parsed.username or "",
             "dbname": parsed.database or ""}  # fmt: skip
    parts.update({k: str(v) for k, v in parsed.query.items() if isinstance(v, str)})
    conninfo = " ".join(f"{k}='{v}'" for k, v in parts.items() if v)
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    return conninfo, env


def _connect(url: str) -> Any:
    import psycopg

    conninfo, env = _libpq(url)
    return psycopg.connect(conninfo, password=env.get("PGPASSWORD"), autocommit=True)


def client_major(tool: str) -> int:
    """Major version of a PostgreSQL client tool (DatabaseError when it is not installed)."""
    path = shutil.which(tool)
    if path is None:
        raise DatabaseError(
            f"{tool} is not installed: PostgreSQL backups need the client tools "
            "(Debian: `apt-get install postgresql-client`, of the server's major version or newer)"
        )
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    found = re.search(r"(\d+)(?:\.\d+)?", out)
    if found is None:
        raise DatabaseError(f"cannot tell the version of {tool} ({out.strip()!r})")
    return int(found.group(1))


def server_major(url: str) -> int:
    """Major version of the PostgreSQL server."""
    with _connect(url) as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


def _check_client(tool: str, needed: int, what: str) -> int:
    have = client_major(tool)
    if have < needed:
        raise DatabaseError(
            f"{tool} {have} is older than {what} (PostgreSQL {needed}): install postgresql-client-{needed} "
            "or newer (a client never handles a newer server's data)"
        )
    return have


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=6 * 3600, check=False)
    if done.returncode != 0:
        raise DatabaseError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-600:]}")


def dump_postgres(url: str, dest: Path) -> Snapshot:
    """`pg_dump -Fc` of the live database at one snapshot, and the counts of that same snapshot."""
    server = server_major(url)
    client = _check_client("pg_dump", server, "the server")
    conninfo, env = _libpq(url)
    with _connect(url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot_id = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        names = [r[0] for r in conn.execute(_PG_TABLES).fetchall()]
        snap = _inspect(conn, names)
        cmd = [shutil.which("pg_dump") or "pg_dump", "--format=custom", "--no-owner", "--no-acl",
               f"--snapshot={snapshot_id}", f"--file={dest}", f"--dbname={conninfo}"]  # fmt: skip
        _run(cmd, env, "pg_dump")  # while the exporting transaction is open
        conn.execute("ROLLBACK")
    snap.kind, snap.client = "postgresql", str(client)
    return snap


def is_empty(url: str) -> tuple[bool, dict[str, int]]:
    """Whether the database holds no account and no chat (missing tables count as empty), and the counts."""
    counts: dict[str, int] = {}
    if kind_of(url) == "sqlite":
        path = sqlite_path(url)
        if not path.exists():
            return True, {}
        tables = inspect_sqlite(path).tables
        counts = {k: tables[k] for k in EMPTY_TABLES if k in tables}
    else:
        with _connect(url) as conn:
            for name in EMPTY_TABLES:
                exists = conn.execute("SELECT to_regclass(%s)", (f"public.{name}",)).fetchone()[0]
                if exists is not None:
                    counts[name] = _count(conn, name)
    return not any(counts.values()), counts


def check_restore_tools(dump_client: str) -> None:
    """pg_restore and psql present, pg_restore as new as the pg_dump that made the dump."""
    _check_client("pg_restore", int(dump_client or 0), "the pg_dump that made the backup")
    client_major("psql")


@contextmanager
def _moved_aside(paths: list[Path]) -> Iterator[None]:
    """Move files aside; put them back if the block fails, drop them if it succeeds."""
    moved = [(p, p.with_name(p.name + ".before-restore")) for p in paths if p.exists()]
    for path, aside in moved:
        os.replace(path, aside)
    try:
        yield
    except BaseException:
        for path, aside in moved:
            os.replace(aside, path)
        raise
    for _path, aside in moved:
        aside.unlink(missing_ok=True)


def restore_sqlite(dump: Path, url: str) -> None:
    """Put the backup's database file in place of the (empty) target database."""
    target = sqlite_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(target.name + ".restoring")
    shutil.copyfile(dump, staged)
    os.chmod(staged, 0o600)
    sidecars = [target.with_name(target.name + s) for s in ("-wal", "-shm", "-journal")]
    with _moved_aside([target, *sidecars]):
        os.replace(staged, target)


def restore_postgres(dump: Path, url: str, work: Path) -> None:
    """Empty the public schema and load the dump, in one transaction (nothing changes if any step fails)."""
    conninfo, env = _libpq(url)
    script = work / "restore.sql"
    _run([shutil.which("pg_restore") or "pg_restore", "--no-owner", "--no-acl", f"--file={script}", str(dump)],
         env, "pg_restore")  # fmt: skip
    prelude = work / "prelude.sql"
    prelude.write_text("DROP SCHEMA IF EXISTS public CASCADE;\nCREATE SCHEMA public;\n")
    cmd = [shutil.which("psql") or "psql", "--no-psqlrc", "--quiet", "--single-transaction", "-v", "ON_ERROR_STOP=1",
           f"--file={prelude}", f"--file={script}", f"--dbname={conninfo}"]  # fmt: skip
    _run(cmd, env, "psql (loading the dump)")


def inspect_postgres(url: str) -> Snapshot:
    """Rows per table of a PostgreSQL database (after a restore)."""
    with _connect(url) as conn:
        names = [r[0] for r in conn.execute(_PG_TABLES).fetchall()]
        snap = _inspect(conn, names)
    snap.kind = "postgresql"
    return snap
