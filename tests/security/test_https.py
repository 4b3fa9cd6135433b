"""Encryption in transit end to end: the production build serves HTTPS itself (TLS_CERT_FILE, a certificate of a
CA made here; TLS_REDIRECT_PORT; HSTS_MAX_AGE) and talks TLS to everything behind it — two workers sharing a
TLS-only redis-server (rediss://, REDIS_CA_FILE: Reflex's state and token managers, its worker count and
health check, Rubin's cache/limits/bus/relay) and the LocalAI stand-in over HTTPS (LOCALAI_CA_FILE). Reached the
way a browser would: pages, sign-up, a chat over wss:// (a real browser: tests/e2e/test_20_https.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from bench.ws_client import Tab
from tests.fakes.https_app import HSTS_MAX_AGE, TOKENS, HttpsApp, running_https_app
from tests.fakes.localai_standin import expected_reply
from tests.security.helpers import run


@pytest.fixture(scope="module")
def https_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsApp]:
    """A production build serving HTTPS on its port, with a redirect port for plain HTTP."""
    with running_https_app(tmp_path_factory.mktemp("https"), "security/https-app.log") as app:
        yield app


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
    response = https_app.sign_up()
    assert response.status_code == 303, response.headers.get("location")
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("rubin_session="))
    assert "secure" in session.lower() and "httponly" in session.lower()
    assert all("secure" in c.lower() for c in cookies), cookies


def test_a_chat_streams_over_wss(https_app: HttpsApp) -> None:
    """A tab's websocket (Reflex's /_event) over TLS: the answer streams and is whole."""
    cookie = https_app.sign_up().cookies.get("rubin_session")
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
    assert text == expected_reply([{"role": "user", "content": "Hello over TLS"}], tokens=TOKENS)
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
