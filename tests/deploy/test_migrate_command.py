"""`python -m rubin_app migrate`: what the Kubernetes migration Job runs before the Deployment (AUTO_MIGRATE=false)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from rubin_app.services.migrate import alembic_config

ROOT = Path(__file__).resolve().parents[2]


def _head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head
    return head


def _migrate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DATA_DIR")}
    return subprocess.run(
        [sys.executable, "-m", "rubin_app", "migrate"], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_migrate_brings_an_empty_database_to_the_newest_schema_even_with_auto_migrate_off(tmp_path: Path) -> None:
    db = tmp_path / "rubin.db"
    done = _migrate({"DATABASE_URL": f"sqlite:///{db}", "AUTO_MIGRATE": "false", "DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "newest migration" in done.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(_head(),)]
    again = _migrate({"DATABASE_URL": f"sqlite:///{db}", "AUTO_MIGRATE": "false", "DATA_DIR": str(tmp_path)})
    assert again.returncode == 0, again.stderr  # a Job retried, or run at every deploy: nothing to do


def test_migrate_with_an_unreachable_database_fails_without_printing_its_password(tmp_path: Path) -> None:
    url = "postgresql://rubin:hunter2-secret@127.0.0.1:9/rubin?connect_timeout=2"
    done = _migrate({"DATABASE_URL": url, "AUTO_MIGRATE": "false", "DATA_DIR": str(tmp_path)})
    assert done.returncode != 0
    assert "hunter2-secret" not in done.stdout + done.stderr
