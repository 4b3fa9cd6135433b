"""The attack suite: a running Rubin instance attacked the way issue #11's attacker did.

By default the suite starts its own production build (an isolated copy of the sources, so its `.states`
folder and log can be inspected too) on default settings: local accounts, no rate-limit switches turned
off, a LocalAI stand-in behind it. To attack an instance that is already running instead:

    RUBIN_TARGET_URL=https://chat.example.com python -m pytest tests/security

Local sign-up must be open there (the suite creates throwaway accounts); the checks that need the
server's files or log run only against the suite's own instance.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.harness import ROOT, free_port, isolated_copy, settings_env, start_app, stop_app
from tests.fakes.localai_standin import StandIn, StandInConfig

ARTIFACTS = ROOT / "test-artifacts" / "security"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is part of the attack suite."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.security)


@dataclass
class Target:
    """The instance under attack; `root` and `log_path` only when the suite started it."""

    base: str
    root: Path | None = None
    log_path: Path | None = None

    @property
    def local(self) -> bool:
        """Whether the server's files and log can be read."""
        return self.root is not None

    def states(self) -> list[Path]:
        """Reflex's stored tab states (disk state manager)."""
        assert self.root is not None
        return sorted((self.root / ".states").glob("*.pkl"))

    def log(self) -> str:
        """The server log so far."""
        assert self.log_path is not None
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The running instance: RUBIN_TARGET_URL, or a production build started here on default settings."""
    remote = os.environ.get("RUBIN_TARGET_URL", "").rstrip("/")
    if remote:
        yield Target(remote)
        return
    tmp = tmp_path_factory.mktemp("security")
    root = isolated_copy(tmp / "app")
    standin = StandIn(StandInConfig(tokens=20, token_rate=100)).start()
    port = free_port()
    log_path = tmp / "app.log"
    proc = None
    try:
        env = settings_env(
            standin.url, tmp / "rubin.db", tmp / "data", port, SECRET_KEY=secrets.token_hex(32), LOG_LEVEL="INFO"
        )
        proc = start_app(env, log_path, root=root)
        yield Target(f"http://127.0.0.1:{port}", root, log_path)
    finally:
        if proc is not None:
            stop_app(proc)
        standin.stop()
        if log_path.exists():
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(log_path, ARTIFACTS / "app.log")
        shutil.rmtree(root, ignore_errors=True)
