"""The two apps of the side-by-side bench behind one small interface: start/stop, sign in, seed, pages, memory.

Rubin runs the way the container and scripts/run.sh start it from a build made once ahead of time: an isolated
copy of this checkout, `reflex export --frontend-only --no-zip` there (once), then
`python -m rubin_app.container serve` (Reflex's production backend with the built frontend mounted; with
EMBEDDING_MODEL unset it also starts the bundled embedding server as a child, which counts as part of the app).
Open WebUI runs `open-webui serve` from its own venv (bench/owui_server.py).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from playwright.sync_api import Browser, BrowserContext

from bench import owui_server
from bench.harness import free_port, isolated_copy, session_cookie, settings_env, sign_in, stop_app, tree_measure
from bench.peer_probes import OWUI, RUBIN, probe_js

RESULTS = Path(__file__).resolve().parent / "results"
LIMITS = dict(
    LOG_LEVEL="WARNING", RATE_LIMIT_RPM="1000000", RATE_LIMIT_IP_RPM="1000000", MAX_CONCURRENT_ANSWERS="1000",
    WS_CONNECTIONS_PER_IP="100000",
)  # fmt: skip


def first_200(base: str, alive: Callable[[], bool], t0: float, limit: float = 300.0) -> float:
    """Seconds from `t0` (monotonic) until GET / answers 200 (redirects followed; polled every 50 ms)."""
    while time.monotonic() - t0 < limit:
        if not alive():
            raise RuntimeError(f"the app at {base} exited while starting")
        try:
            if httpx.get(base + "/", timeout=5, follow_redirects=True).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no 200 from {base}/ within {limit} s")


def tree_pss_mb(pid: int) -> tuple[float, list[str]]:
    """PSS of a process and all its descendants in MB, and what was counted ("name pid: MB")."""
    found = tree_measure(pid, lambda p: (" ".join(p.cmdline()[:3])[-60:], p.memory_full_info().pss))
    return sum(pss for _, pss in found) / 1e6, [f"{name}: {pss / 1e6:.0f}" for name, pss in found]


@dataclass
class PeerApp:
    """One app under test: how to start it, sign a browser context in, and where its chats are."""

    name: str
    cfg: dict[str, str]
    port: int
    command: list[str]
    env: dict[str, str]
    cwd: Path
    token: str = ""
    proc: subprocess.Popen | None = None
    log: Path = field(default_factory=Path)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start the server process; seconds until its page first answers 200."""
        with self.log.open("ab") as out:
            t0 = time.monotonic()
            self.proc = subprocess.Popen(
                self.command, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        proc = self.proc
        return first_200(self.base, lambda: proc.poll() is None, t0)

    def stop(self) -> None:
        """Stop the whole process group."""
        if self.proc is not None:
            stop_app(self.proc)
            self.proc = None

    def sign_in(self) -> None:
        """Create (or sign in to) the bench account; keep its token."""
        if self.name == "Rubin":
            self.token = sign_in(self.base)
        else:
            self.token = owui_server.sign_in(self.base)
            owui_server.wait_models(self.base, self.token)

    def context(self, browser: Browser) -> BrowserContext:
        """A new signed-in browser context with the probes installed."""
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
        if self.name == "Rubin":
            context.add_cookies([session_cookie(self.base, self.token)])  # type: ignore[list-item]
        else:
            context.add_init_script(owui_server.token_script(self.token))
        context.add_init_script(probe_js(self.cfg))
        return context

    def pss_mb(self) -> tuple[float, list[str]]:
        """PSS of the app's whole process tree."""
        return tree_pss_mb(self.proc.pid) if self.proc is not None else (0.0, [])


def rubin(standin_url: str, tmp: Path) -> PeerApp:
    """Rubin in an isolated copy, its frontend built once for a fixed port."""
    port = free_port()
    copy = isolated_copy(tmp / "rubin")
    env = settings_env(standin_url, tmp / "rubin.db", tmp / "rubin-data", port, **LIMITS)
    env["API_URL"] = f"http://localhost:{port}"
    env["EMBEDDING_PORT"] = str(free_port())  # the bundled embedder (started by `serve`) on a port of its own
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / "peers-rubin.log"
    log.write_bytes(b"")
    with log.open("ab") as out:
        subprocess.run(
            ["reflex", "export", "--frontend-only", "--no-zip", "--env", "prod", "--loglevel", "warning"],
            cwd=copy, env=env, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=1800,
        )  # fmt: skip
    command = [sys.executable, "-m", "rubin_app.container", "serve"]
    return PeerApp("Rubin", RUBIN, port, command, env, copy, log=log)


def owui(standin_url: str, tmp: Path) -> PeerApp:
    """Open WebUI with a fresh data directory."""
    env = owui_server.owui_env(standin_url, tmp / "owui-data")
    port = free_port()
    log = RESULTS / "peers-owui.log"
    log.write_bytes(b"")
    (tmp / "owui-data").mkdir(parents=True, exist_ok=True)
    command = [str(owui_server.VENV / "bin" / "open-webui"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return PeerApp("Open WebUI", OWUI, port, command, env, tmp / "owui-data", log=log)
