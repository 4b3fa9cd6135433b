"""A throwaway PostgreSQL 16 with the pgvector extension: the server binaries of the PyPI package `pgserver`,
run with initdb + pg_ctl (as the `postgres` user when we are root, like tests/conftest.py's Debian cluster).
Used by the knowledge tests' session fixture and by bench/retrieval_latency.py."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg


def pgserver_install() -> Path:
    """pgserver's PostgreSQL install (bin/, lib/, share/); located, not imported (importing starts nothing)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the PyPI package pgserver is not installed (requirements-dev.txt)")
    install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (install / "bin" / "initdb").exists():
        raise RuntimeError(f"pgserver's PostgreSQL binaries are missing under {install}")
    return install


class PgvectorServer:
    """Start with `PgvectorServer(port)`, then `.database(name)` -> sync URL; `.stop()` removes everything."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = Path(tempfile.mkdtemp(prefix="rubin-pgvector-"))
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.bin = pgserver_install() / "bin"
        if self.prefix:
            shutil.chown(self.base, "postgres", "postgres")
            if subprocess.run([*self.prefix, "test", "-x", str(self.bin / "initdb")], check=False).returncode:
                # the virtualenv is not readable by `postgres` (e.g. under /root): run a copy the user can read
                copy = self.base / "pginstall"
                shutil.copytree(self.bin.parent, copy)
                self.bin = copy / "bin"
        self.started = False
        try:
            self._run("initdb", "-D", str(self.base / "data"), "-A", "trust", "--no-sync", "-U", "postgres")
            options = f"-p {port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
            self._run(
                "pg_ctl", "-D", str(self.base / "data"), "-l", str(self.base / "log"), "-o", options, "-w", "start"
            )
            self.started = True
        finally:
            if not self.started:
                shutil.rmtree(self.base, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            [*self.prefix, str(self.bin / tool), *args], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode:
            raise RuntimeError(f"{tool} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True)

    def database(self, name: str) -> str:
        """Create an empty database; its SYNC SQLAlchemy URL."""
        with self.connect() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.started:
            stop = [*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.base / "data"), "stop", "-m", "immediate"]
            subprocess.run(stop, capture_output=True, timeout=60, check=False)
            self.started = False
        shutil.rmtree(self.base, ignore_errors=True)
