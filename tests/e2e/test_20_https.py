"""HTTPS served by Rubin itself, in Chromium: the page loads over https, its websocket goes to wss:// on the
app's own port (PUBLIC_URL: Reflex's page alone would assume 443), and an answer streams in.

Chromium trusts the test server's key alone (`--ignore-certificate-errors-spki-list`, the key's SHA-256), not
every certificate. The app is its own production build with TLS behind it too (tests/fakes/https_app.py).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Browser, BrowserType, expect

from tests.fakes.https_app import TOKENS, HttpsApp, running_https_app

from .conftest import CHROMIUM_ARGS
from .helpers import add_session, body, expected, send, unique, wait_live, wait_status


@pytest.fixture(scope="module")
def https_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsApp]:
    with running_https_app(tmp_path_factory.mktemp("https-e2e"), "e2e/https-app.log") as app:
        yield app


def spki_hash(cert_path: Path) -> str:
    """base64 SHA-256 of a certificate's public key (what Chromium's SPKI allow-list takes)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def tls_browser(browser_type: BrowserType, https_app: HttpsApp) -> Iterator[Browser]:
    """Chromium that trusts the test server's key (and nothing else it would not trust anyway)."""
    trust = f"--ignore-certificate-errors-spki-list={spki_hash(https_app.cert)}"
    browser = browser_type.launch(executable_path="/usr/bin/chromium", args=[*CHROMIUM_ARGS, trust])
    yield browser
    browser.close()


def test_the_app_over_https_in_chromium(tls_browser: Browser, https_app: HttpsApp) -> None:
    cookie = https_app.sign_up().cookies.get("rubin_session")
    assert cookie
    context = tls_browser.new_context(base_url=https_app.base, locale="en-US")
    try:
        add_session(context, https_app.base, cookie)
        page = context.new_page()
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto("/")
        wait_live(page)
        assert page.evaluate("location.protocol") == "https:"
        port = https_app.base.rsplit(":", 1)[1]
        assert any(url.startswith(f"wss://127.0.0.1:{port}/_event") for url in sockets), sockets
        question = unique("tls")
        send(page, question)
        answer = wait_status(page, "complete")
        expect(body(answer)).to_have_text(expected(question, tokens=TOKENS))
    finally:
        context.close()
