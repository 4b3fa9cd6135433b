"""One worker, one process (slow): `python -m rubin_app.container serve` with the default settings runs the app in the
process it started (granian's embedded server, rubin_app/serve_single.py), not a supervisor plus a forked worker.
It serves the page and the websocket, SIGTERM ends it cleanly (the embedding server it started with it), and an
answer still streaming at SIGTERM is handed over: saved as it was, and finished by the next start."""

from __future__ import annotations

import signal
import ssl
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.sync.client import connect

from bench.harness import free_port, isolated_copy, serve_until_page, settings_env, stop_app
from tests.fakes.certs import TestCA
from tests.fakes.localai_standin import StandIn
from tests.multiworker.helpers import Cluster, close_all, expected, open_tab, run, unique, until, wait_until

pytestmark = pytest.mark.slow

PAGE = "<!doctype html><html><body>rubin single-process page</body></html>"


def prepared_copy(tmp_path: Path) -> Path:
    """A copy of the app with a stand-in for the built frontend (`serve` mounts what is there)."""
    copy = isolated_copy(tmp_path / "app")
    build = copy / ".web" / "build" / "client"
    build.mkdir(parents=True)
    (build / "index.html").write_text(PAGE)
    return copy


def start(copy: Path, env: dict[str, str], log: Path, verify: ssl.SSLContext | None = None) -> subprocess.Popen[bytes]:
    """`container serve` until `/` answers 200 with the page (over HTTPS, checked with `verify`, when given)."""
    args = ["-m", "rubin_app.container", "serve"]
    proc, answer = serve_until_page(args, copy, env, log, 120, append=True, verify=verify)
    assert "rubin single-process page" in answer.text
    return proc


def test_one_process_serves_page_and_websocket_and_stops_on_sigterm(tmp_path: Path, standin: StandIn) -> None:
    copy = prepared_copy(tmp_path)
    port = free_port()
    env = settings_env(standin.url, tmp_path / "app.db", tmp_path / "data", port, EMBEDDING_PORT=str(free_port()))
    log = tmp_path / "serve.log"
    proc = start(copy, env, log)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
        children = psutil.Process(proc.pid).children(recursive=True)
        # The only other process is the bundled embedding server: no granian supervisor/worker pair.
        assert [c.cmdline()[1:3] for c in children] == [["-m", "rubin_app.embed_server"]], children
        with connect(f"ws://127.0.0.1:{port}/_event/?EIO=4&transport=websocket", open_timeout=10) as ws:
            opening = ws.recv(timeout=10)
        assert isinstance(opening, str) and opening.startswith("0{") and '"sid"' in opening  # engine.io's open
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        for child in children:
            child.wait(10)  # the embedding server ends with the app (raises if it outlives it)
    finally:
        stop_app(proc)


def test_sigterm_mid_answer_hands_it_over_and_the_next_start_finishes_it(tmp_path: Path, standin: StandIn) -> None:
    copy = prepared_copy(tmp_path)
    port = free_port()
    env = settings_env(standin.url, tmp_path / "app.db", tmp_path / "data", port, EMBEDDINGS_ENABLED="false",
                       TITLE_MODE="first_message", RATE_LIMIT_RPM="0", REQUIRE_APPROVAL="false")  # fmt: skip
    log = tmp_path / "serve.log"
    app = Cluster(f"http://127.0.0.1:{port}", port, start(copy, env, log), None, standin, tmp_path / "app.db", log)  # type: ignore[arg-type]
    email, cookie = app.new_user("handover")
    question = f"{unique('handover')} [[tokens=150]] [[rate=30]]"  # five seconds of streaming

    async def send_and_stop() -> str:
        tab = await open_tab(app, cookie)  # type: ignore[arg-type]
        try:
            await tab.send(question)
            cid, _mid = await until(lambda: app.live_answer(email), what="the answer to start")
            await until(lambda: len(tab.text()) > 20, what="some of the answer to stream")
            app.proc.send_signal(signal.SIGTERM)
            return cid
        finally:
            await close_all([tab])

    cid = run(send_and_stop())
    try:
        assert app.proc.wait(30) == 0, log.read_text()
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no exit 30 s after SIGTERM: {log.read_text()}") from None
    saved = app.exchanges(cid)[-1]
    assert saved[0] == "assistant" and saved[1] and expected(question).startswith(saved[1]), saved
    assert saved[1] != expected(question)  # stopped mid-answer: the text so far was kept
    app.proc = start(copy, env, log)  # the next start goes on from the text so far
    try:
        wait_until(lambda: app.exchanges(cid)[-1][1:] == (expected(question), "complete"), timeout=30,
                   what="the answer finished after the restart")  # fmt: skip
    finally:
        stop_app(app.proc)


def test_one_process_serves_https_with_the_redirect_port(tmp_path: Path, standin: StandIn) -> None:
    """TLS_CERT_FILE: the one process speaks HTTPS itself, the plain-HTTP port redirects, and both end at SIGTERM."""
    copy = prepared_copy(tmp_path)
    ca = TestCA(tmp_path / "ca")
    issued = ca.issue("rubin")
    port, redirect_port = free_port(), free_port()
    env = settings_env(standin.url, tmp_path / "app.db", tmp_path / "data", port, EMBEDDINGS_ENABLED="false",
                       TLS_CERT_FILE=str(issued.cert), TLS_KEY_FILE=str(issued.key),
                       TLS_REDIRECT_PORT=str(redirect_port), PUBLIC_URL=f"https://127.0.0.1:{port}")  # fmt: skip
    log = tmp_path / "serve.log"
    proc = start(copy, env, log, verify=ssl.create_default_context(cafile=str(ca.cert)))
    try:
        redirect = wait_until(lambda: _redirect(redirect_port), what="the redirect port")
        assert redirect.status_code == 308 and redirect.headers["location"] == f"https://127.0.0.1:{port}/chat?x=1"
        listener = psutil.Process(proc.pid).children(recursive=True)
        assert {tuple(c.cmdline()[1:3]) for c in listener} == {("-m", "rubin_app.serve_tls")}  # and its worker
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        psutil.wait_procs(listener, timeout=10)
        assert not [c for c in listener if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    finally:
        stop_app(proc)


def _redirect(port: int) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/chat?x=1", timeout=2)
    except httpx.HTTPError:
        return None
