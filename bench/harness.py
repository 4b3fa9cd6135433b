"""Shared bench plumbing: start the production app against a stand-in, measure in a real browser."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.localai_standin import StandIn, StandInConfig  # noqa: E402  (ROOT on the path first)

T = TypeVar("T")

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

# JS regex: a websocket frame that pushes streamed text: the `rs` event of rubin_app/state/stream_channel.py
# with an answer-text operation ("t<offset>|<text>", maybe after a reset "x").
STREAM_PIECE_RE = r'/^42\/_event,\["rs",(?:"x",)?"t\d+\|/'

# Wraps the page's WebSocket to timestamp and count frames (browser clock, no Playwright latency).
WS_PROBE = """
(() => {
  const Native = window.WebSocket;
  const STREAM_PIECE = __STREAM_PIECE__;
  window.__ws = {sent: [], recv: [], bytes: 0};
  class Probe extends Native {
    constructor(...a) {
      super(...a);
      this.addEventListener('message', (ev) => {
        const data = typeof ev.data === 'string' ? ev.data : '';
        const n = typeof ev.data === 'string' ? new TextEncoder().encode(ev.data).length : (ev.data.byteLength || ev.data.size || 0);
        window.__ws.bytes += n;
        window.__ws.recv.push({t: performance.now(), n, stream: STREAM_PIECE.test(data)});
      });
    }
    send(d) {
      window.__ws.sent.push({t: performance.now(), send: typeof d === 'string' && d.includes('chat_state.send')});
      return super.send(d);
    }
  }
  window.WebSocket = Probe;
})();
""".replace("__STREAM_PIECE__", STREAM_PIECE_RE)


BENCH_EMAIL = "bench@example.com"
BENCH_PASSWORD = "bench-password-1234"


def sign_in(base: str, email: str = BENCH_EMAIL, password: str = BENCH_PASSWORD, name: str = "Bench") -> str:
    """A fresh session token for the account, creating it first when it does not exist yet."""
    form = {"name": name, "email": email, "password": password, "password2": password}
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as client:
        signup = response = client.post("/auth/local/signup", data=form)
        if "rubin_session" not in response.cookies:
            response = client.post("/auth/local/login", data={"email": email, "password": password})
        token = response.cookies.get("rubin_session")
    if not token:
        raise RuntimeError(
            f"could not sign in as {email}: sign-up answered {signup.status_code} "
            f"{signup.headers.get('location') or signup.text[:200]!r}, "
            f"sign-in answered {response.status_code} {response.headers.get('location')!r}"
        )
    return token


def session_cookie(base: str, token: str) -> dict[str, str]:
    """The session cookie in the shape Playwright's context.add_cookies takes."""
    return {"name": "rubin_session", "value": token, "url": base}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_env(localai_url: str, db_path: Path, port: int, **extra: str) -> dict[str, str]:
    """Environment for a production app run (what scripts/env.sh sets, plus the app settings)."""
    env = dict(os.environ)
    env.update(
        PATH=f"{ROOT}/.venv/bin:{ROOT}/.tools/bun/node_modules/.bin:{env.get('PATH', '')}",
        NODE_EXTRA_CA_CERTS=env.get("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca-certificates.crt"),
        REFLEX_TELEMETRY_ENABLED="false",
        REFLEX_CHECK_LATEST_VERSION="false",
        REFLEX_USE_SYSTEM_BUN="1",
        REFLEX_DIR=str(ROOT / ".tools" / "reflex"),
        LOCALAI_URL=localai_url,
        DATABASE_URL=f"sqlite:///{db_path}",
        FRONTEND_PORT=str(port),
        LOG_LEVEL="WARNING",
        # Limits stay on (their checks are part of the measured path) but high enough for a benchmark.
        RATE_LIMIT_RPM="1000000",
        RATE_LIMIT_IP_RPM="1000000",
        MAX_CONCURRENT_ANSWERS="1000",
        WS_CONNECTIONS_PER_IP="100000",  # every benchmark tab comes from 127.0.0.1
    )
    env.update(extra)
    return env


def settings_env(localai_url: str, db_path: Path, data_dir: Path, port: int, **settings: str) -> dict[str, str]:
    """An app environment where no setting leaks in from the shell: defaults, where things are, and `settings`."""
    from rubin_app.config import Settings

    env = app_env(localai_url, db_path, port)
    for name in [*Settings.model_fields, "reflex_redis_url"]:
        env.pop(name.upper(), None)
    env.update(
        LOCALAI_URL=localai_url, DATABASE_URL=f"sqlite:///{db_path}", DATA_DIR=str(data_dir), FRONTEND_PORT=str(port),
        **settings,
    )  # fmt: skip
    return env


def isolated_copy(dest: Path) -> Path:
    """A copy of the app sources sharing .venv/.tools, so a second build never touches ./.web."""
    skip = {".web", ".git", "data", ".venv", ".tools", ".states", "test-artifacts", "__pycache__", ".pytest_cache"}
    shutil.copytree(ROOT, dest, ignore=lambda _d, names: [n for n in names if n in skip])
    for name in (".venv", ".tools"):
        (dest / name).symlink_to(ROOT / name)
    return dest


def start_app(
    env: dict[str, str], log_path: Path, timeout: float = 240.0, root: Path = ROOT, verify: ssl.SSLContext | bool = True
) -> subprocess.Popen:
    """`reflex run --env prod` in its own process group; returns once /api/health answers (over HTTPS with
    TLS_CERT_FILE, checked with `verify`)."""
    port = env["FRONTEND_PORT"]
    scheme = "https" if env.get("TLS_CERT_FILE") else "http"
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            ["reflex", "run", "--env", "prod", "--frontend-port", port, "--backend-port", port],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited early; see {log_path}")
        try:
            if httpx.get(f"{scheme}://127.0.0.1:{port}/api/health", timeout=2, verify=verify).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_app(proc)
    raise TimeoutError(f"app did not start in {timeout} s; see {log_path}")


def serve_until_page(
    args: list[str],
    cwd: Path,
    env: dict[str, str],
    log: Path,
    timeout: float,
    *,
    append: bool = False,
    verify: ssl.SSLContext | None = None,
) -> tuple[subprocess.Popen[bytes], httpx.Response]:
    """Start `python <args>` in its own process group (output to `log`) until `/` answers 200 (over HTTPS, checked
    with `verify`, when given); the process and that answer. Fails with the log when it exits or times out."""
    with log.open("ab" if append else "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    scheme = "https" if verify else "http"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            answer = httpx.get(f"{scheme}://127.0.0.1:{env['FRONTEND_PORT']}/", timeout=2, verify=verify or True)
            if answer.status_code == 200:
                return proc, answer
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_app(proc)
    raise TimeoutError(log.read_text())


@dataclass
class Bench:
    """A stand-in and the production app on a fresh SQLite database, for one benchmark run."""

    standin: StandIn
    app: subprocess.Popen
    db_path: Path
    base: str

    def close(self) -> None:
        stop_app(self.app)
        self.standin.stop()


def launch(token_rate: float, log_name: str, root: Path = ROOT) -> Bench:
    """Start the LocalAI stand-in (20 pieces per answer at `token_rate`) and the app against it."""
    tmp = Path(tempfile.mkdtemp(prefix="rubin-bench-"))
    standin = StandIn(StandInConfig(token_rate=token_rate, tokens=20)).start()
    port = free_port()
    env = app_env(standin.url, tmp / "bench.db", port)
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    try:
        app = start_app(env, ROOT / "bench" / "results" / log_name, root=root)
    except BaseException:
        standin.stop()
        raise
    return Bench(standin, app, tmp / "bench.db", f"http://127.0.0.1:{port}")


def stop_app(proc: subprocess.Popen) -> None:
    """Stop the app's whole process group."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def tree_measure(pid: int, measure: Callable[[psutil.Process], T]) -> list[T]:
    """`measure` of a process and of each of its descendants (those that end or refuse meanwhile are left out)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    found = []
    for proc in procs:
        try:
            found.append(measure(proc))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, in MB."""
    return sum(tree_measure(pid, lambda p: p.memory_info().rss)) / 1e6


def backend_rss_mb(proc: subprocess.Popen) -> float:
    """Resident memory of the app's process tree in MB (prod: no JS runtime runs)."""
    return tree_rss_mb(proc.pid)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def print_table(title: str, rows: list[tuple[str, str, str, str, str]]) -> None:
    """Print benchmark rows as a Markdown table (metric, Rubin, baseline, delta/ratio, target)."""
    header = ("metric", "Rubin", "baseline (same run)", "delta / ratio", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    print(f"\n{title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
