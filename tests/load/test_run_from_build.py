"""End to end (slow): `python -m rubin_app.container serve --build`, what scripts/run.sh runs, in a copy of the app:
built at the first start, served from that build at the next (no bun, no vite), rebuilt after a source changed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from bench.harness import free_port, isolated_copy, serve_until_page, settings_env, stop_app
from tests.fakes.localai_standin import StandIn

pytestmark = pytest.mark.slow


def start(copy: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Run the start command until `/` answers 200; the process and what it printed."""
    proc, _ = serve_until_page(["-m", "rubin_app.container", "serve", "--build"], copy, env, log, 300)
    return proc, log.read_text()


def test_built_once_then_started_from_the_build_until_a_source_changes(tmp_path: Path, standin: StandIn) -> None:
    copy = isolated_copy(tmp_path / "app")
    port = free_port()
    env = settings_env(standin.url, tmp_path / "app.db", tmp_path / "data", port, LOG_LEVEL="WARNING",
                       EMBEDDINGS_ENABLED="false")  # fmt: skip
    starts = []
    for n, change in enumerate([None, None, "assets/rubin.js"]):
        if change:
            with (copy / change).open("a") as f:
                f.write("\n// changed\n")
        proc, printed = start(copy, env, tmp_path / f"start-{n}.log")
        try:
            page = httpx.get(f"http://127.0.0.1:{port}/rubin.js", timeout=10).text
        finally:
            stop_app(proc)
        starts.append(("building the production frontend" in printed, "up to date" in printed, page))
    assert starts[0][:2] == (True, False)  # a fresh copy: built
    assert starts[1][:2] == (False, True)  # nothing changed: served from the build
    assert starts[2][:2] == (True, False) and starts[2][2].endswith("// changed\n")  # the change is served
