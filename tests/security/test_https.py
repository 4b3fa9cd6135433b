"""Encryption in transit end to end: the production build serves HTTPS itself (TLS_CERT_FILE, a certificate of a
CA made here; TLS_REDIRECT_PORT; HSTS_MAX_AGE) and talks TLS to everything behind it — two workers sharing a
TLS-only redis-server (rediss://, REDIS_CA_FILE: Reflex's state and token managers, its worker count and
health check, Rubin's cache/limits/bus/relay) and the LocalAI stand-in over HTTPS (LOCALAI_CA_FILE). Reached the
way a browser would: pages, sign-up, a chat over wss://.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis

from bench.harness import ROOT, free_port, isolated_copy, settings_env, start_app, stop_app
from bench.ws_client import Tab
from tests.fakes.certs import TestCA
from tests.fakes.localai_standin import StandIn, StandInConfig, expected_reply
from tests.fakes.redis_server import RedisServer, RedisTLS
from tests.security.helpers import run

ARTIFACTS = ROOT / "test-artifacts" / "security"
HSTS_MAX_AGE = 600


@dataclass
class HttpsApp:
    """The running app: its https base, the plain-HTTP redirect port, the CA that signed its certificate."""

    base: str
    redirect_port: int
    ca: TestCA
    context: ssl.SSLContext
    proc: subprocess.Popen
    redis_url: str

    def client(self, **kwargs: object) -> httpx.Client:
        """An HTTP client that trusts the test CA (as a browser with it installed would)."""
        return httpx.Client(base_url=self.base, verify=self.context, timeout=30, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def https_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsApp]:
    """A production build serving HTTPS on its port, with a redirect port for plain HTTP."""
    tmp = tmp_path_factory.mktemp("https")
    ca = TestCA(tmp / "pki")
    issued, redis_cert, localai_cert = ca.issue("rubin"), ca.issue("redis"), ca.issue("localai")
    root = isolated_copy(tmp / "app")
    standin = StandIn(StandInConfig(tokens=12, token_rate=200), tls=(localai_cert.cert, localai_cert.key)).start()
    redis_server = RedisServer(tls=RedisTLS(redis_cert.cert, redis_cert.key, ca.cert)).start()
    port, redirect_port = free_port(), free_port()
    log_path = tmp / "app.log"
    context = ssl.create_default_context(cafile=str(ca.cert))
    env = settings_env(
        standin.url, tmp / "rubin.db", tmp / "data", port, SECRET_KEY=secrets.token_hex(32),
        TLS_CERT_FILE=str(issued.cert), TLS_KEY_FILE=str(issued.key), TLS_REDIRECT_PORT=str(redirect_port),
        PUBLIC_URL=f"https://127.0.0.1:{port}", HSTS_MAX_AGE=str(HSTS_MAX_AGE), LOCALAI_CA_FILE=str(ca.cert),
        REDIS_URL=redis_server.url, REDIS_CA_FILE=str(ca.cert), WORKERS="2",
    )  # fmt: skip
    proc = None
    try:
        proc = start_app(env, log_path, root=root, verify=context)
        redis_url = f"{redis_server.url}?ssl_ca_certs={ca.cert}"
        yield HttpsApp(f"https://127.0.0.1:{port}", redirect_port, ca, context, proc, redis_url)
    finally:
        if proc is not None:
            stop_app(proc)
        standin.stop()
        redis_server.close()
        if log_path.exists():
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(log_path, ARTIFACTS / "https-app.log")
        shutil.rmtree(root, ignore_errors=True)


def _sign_up(app: HttpsApp) -> httpx.Response:
    password = f"pw-{uuid.uuid4().hex}"
    form = {"name": "tls", "email": f"tls-{uuid.uuid4().hex[:8]}@example.com", "password": password,
            "password2": password}  # fmt: skip
    with app.client(headers={"Origin": app.base}) as client:
        return client.post("/auth/local/signup", data=form)


def test_pages_over_https_with_the_ca(https_app: HttpsApp) -> None:
    with https_app.client() as client:
        page = client.get("/login/")
        health = client.get("/api/health")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert health.status_code == 200
    assert page.headers["strict-transport-security"] == f"max-age={HSTS_MAX_AGE}"
    assert health.headers["strict-transport-security"] == f"max-age={HSTS_MAX_AGE}"


def test_everything_behind_the_app_is_reached_over_tls(https_app: HttpsApp) -> None:
    """LocalAI over HTTPS and Redis over TLS answer the app (health), and Reflex keeps its tab states there."""
    with https_app.client() as client:
        health = client.get("/api/health").json()
    assert health["status"] == "ok", health
    assert health["localai"]["ok"] is True and health["redis"] == {"configured": True, "ok": True}
    client = redis.Redis.from_url(https_app.redis_url)
    try:
        assert client.ping()
    finally:
        client.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_served(https_app: HttpsApp, version: ssl.TLSVersion) -> None:
    context = ssl.create_default_context(cafile=str(https_app.ca.cert))
    context.minimum_version = context.maximum_version = version
    with httpx.Client(verify=context, timeout=10) as client:
        assert client.get(https_app.base + "/api/version").status_code == 200


def test_a_client_without_the_ca_refuses_the_certificate(https_app: HttpsApp) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(https_app.base + "/api/health", timeout=10)  # the system's CAs do not know the test CA


def test_plain_http_on_the_https_port_gets_no_page(https_app: HttpsApp) -> None:
    with pytest.raises(httpx.HTTPError):  # nothing is served in clear on the HTTPS port
        httpx.get(https_app.base.replace("https://", "http://") + "/api/health", timeout=10)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_http_port_redirects_to_https(https_app: HttpsApp, method: str) -> None:
    plain = f"http://127.0.0.1:{https_app.redirect_port}"
    response = httpx.request(method, plain + "/c/12?x=1&y=two", headers={"Host": "evil.example"}, timeout=10)
    assert response.status_code == 308
    assert response.headers["location"] == https_app.base + "/c/12?x=1&y=two"  # PUBLIC_URL, never the Host header
    assert "strict-transport-security" not in response.headers  # HSTS means nothing over plain HTTP
    with https_app.client() as client:  # and the page it points at answers
        assert client.get("/api/health").status_code == 200


def test_cookies_are_secure_over_https(https_app: HttpsApp) -> None:
    response = _sign_up(https_app)
    assert response.status_code == 303, response.headers.get("location")
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("rubin_session="))
    assert "secure" in session.lower() and "httponly" in session.lower()
    assert all("secure" in c.lower() for c in cookies), cookies


def test_a_chat_streams_over_wss(https_app: HttpsApp) -> None:
    """A tab's websocket (Reflex's /_event) over TLS: the answer streams and is whole."""
    cookie = _sign_up(https_app).cookies.get("rubin_session")
    assert cookie

    async def chat() -> str:
        tab = Tab(https_app.base, cookie, ssl_context=https_app.context)
        await tab.open("/")
        try:
            for _ in range(100):  # on_load (chat list, models) runs after hydration
                await asyncio.sleep(0.1)
                if tab.deltas:
                    break
            await asyncio.sleep(0.5)
            await tab.send("Hello over TLS")
            assert await tab.wait_done(60), "the answer did not finish"
            return tab.text()
        finally:
            await tab.close()

    text = run(chat())
    assert text == expected_reply([{"role": "user", "content": "Hello over TLS"}], tokens=12)
    client = redis.Redis.from_url(https_app.redis_url)
    try:  # the tab's state went through the TLS Redis (Reflex's keys are not Rubin's "rubin:" ones)
        assert any(not key.startswith(b"rubin:") for key in client.scan_iter(count=1000))
    finally:
        client.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_zz_the_redirect_listener_ends_with_the_server(https_app: HttpsApp) -> None:
    """Stopping the server (SIGTERM to `reflex run` alone, not its process group) stops the redirect port too."""
    assert _listening(https_app.redirect_port)
    os.kill(https_app.proc.pid, signal.SIGTERM)
    https_app.proc.wait(30)
    deadline = time.monotonic() + 15
    while _listening(https_app.redirect_port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _listening(https_app.redirect_port)
