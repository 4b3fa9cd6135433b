"""The production build with encryption in transit everywhere, for the HTTPS tests (tests/security, tests/e2e).

It serves HTTPS itself (TLS_CERT_FILE from a CA made here, TLS_REDIRECT_PORT, HSTS_MAX_AGE) and talks TLS to
everything behind it: two workers sharing a TLS-only redis-server (rediss://, REDIS_CA_FILE) and the LocalAI
stand-in over HTTPS (LOCALAI_CA_FILE).
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import ROOT, free_port, isolated_copy, settings_env, start_app, stop_app
from tests.fakes.certs import TestCA
from tests.fakes.localai_standin import StandIn, StandInConfig
from tests.fakes.redis_server import RedisServer, RedisTLS

ARTIFACTS = ROOT / "test-artifacts"
HSTS_MAX_AGE = 600
TOKENS = 12  # words per stand-in answer


@dataclass
class HttpsApp:
    """The running app: its https base, the plain-HTTP redirect port, the CA that signed its certificate."""

    base: str
    redirect_port: int
    ca: TestCA
    context: ssl.SSLContext
    proc: subprocess.Popen
    redis_url: str
    cert: Path

    def client(self, **kwargs: object) -> httpx.Client:
        """An HTTP client that trusts the test CA (as a browser with it installed would)."""
        return httpx.Client(base_url=self.base, verify=self.context, timeout=30, **kwargs)  # type: ignore[arg-type]

    def sign_up(self) -> httpx.Response:
        """A new local account through the sign-up form's POST (the response sets the session cookie)."""
        password = f"pw-{uuid.uuid4().hex}"
        form = {"name": "tls", "email": f"tls-{uuid.uuid4().hex[:8]}@example.com", "password": password,
                "password2": password}  # fmt: skip
        with self.client(headers={"Origin": self.base}) as client:
            return client.post("/auth/local/signup", data=form)


@contextlib.contextmanager
def running_https_app(tmp: Path, log_name: str) -> Iterator[HttpsApp]:
    """Start it all in `tmp`; the app's log is kept as test-artifacts/<log_name>."""
    ca = TestCA(tmp / "pki")
    issued, redis_cert, localai_cert = ca.issue("rubin"), ca.issue("redis"), ca.issue("localai")
    root = isolated_copy(tmp / "app")
    standin = StandIn(StandInConfig(tokens=TOKENS, token_rate=200), tls=(localai_cert.cert, localai_cert.key)).start()
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
        yield HttpsApp(f"https://127.0.0.1:{port}", redirect_port, ca, context, proc, redis_url, issued.cert)
    finally:
        if proc is not None:
            stop_app(proc)
        standin.stop()
        redis_server.close()
        if log_path.exists():
            (ARTIFACTS / log_name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(log_path, ARTIFACTS / log_name)
        shutil.rmtree(root, ignore_errors=True)
