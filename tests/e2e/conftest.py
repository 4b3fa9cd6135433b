"""End-to-end fixtures: the production build of Rubin AI, a LocalAI stand-in, an OIDC provider and Debian Chromium.

Self-contained on purpose (it does not use the root conftest's fixtures): one stand-in, one OpenID
Connect provider (oidc-provider-mock) and one `reflex run --env prod` for the whole session, one
browser, a fresh browser context per test. Every page but /login needs a signed-in user: the session
creates an admin (the first account) and a plain e2e user through the sign-up form's POST, and each
browser context `open_page` makes gets its own fresh session cookie (POST /auth/local/login), so a test
that signs out never ends another context's session.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.fakes.localai_standin import StandIn, StandInConfig
from tests.fakes.oidc_provider import OIDCProvider, run_oidc_provider

from .helpers import (
    DEFAULT_RATE,
    DEFAULT_TOKENS,
    LOGIN_MAX_FAILURES,
    MAX_MESSAGE_CHARS,
    PROVIDER_ID,
    PROVIDER_NAME,
    Account,
    add_session,
    new_account,
    session_token,
    sign_up,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
STARTUP_TIMEOUT = 180.0
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

expect.set_options(timeout=10_000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is an end-to-end test."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Remember each phase's report on the item (the page fixture screenshots failures)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


AUTH_SETTINGS = (
    "AUTH_PROVIDERS", "LOCAL_LOGIN", "LOCAL_SIGNUP", "REQUIRE_APPROVAL", "ADMIN_EMAILS", "SECRET_KEY",
    "SESSION_LIFETIME_HOURS", "PASSWORD_MIN_LENGTH", "LOGIN_MAX_FAILURES", "LOGIN_IP_MAX_FAILURES",
    "LOGIN_LOCKOUT_MINUTES", "PUBLIC_URL", "COOKIE_SECURE", "REDIS_URL", "REFLEX_REDIS_URL", "WORKERS",
)  # fmt: skip


def app_environment(standin_url: str, db_path: Path, port: int, issuer: str) -> dict[str, str]:
    """Everything scripts/env.sh exports, plus the app's settings for the e2e run."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "LOCALAI_", "LLM_")) and k.upper() not in AUTH_SETTINGS
    }
    provider = {
        "id": PROVIDER_ID,
        "name": PROVIDER_NAME,
        "issuer": issuer,
        "client_id": "rubin",
        "client_secret": "s3cret-value",
    }
    env.update(
        RUBIN_ROOT=str(ROOT),
        PATH=f"{ROOT}/.venv/bin:{ROOT}/.tools/bun/node_modules/.bin:{os.environ.get('PATH', '')}",
        NODE_EXTRA_CA_CERTS=os.environ.get("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca-certificates.crt"),
        REFLEX_TELEMETRY_ENABLED="false",
        REFLEX_CHECK_LATEST_VERSION="false",
        REFLEX_USE_SYSTEM_BUN="1",
        REFLEX_DIR=str(ROOT / ".tools" / "reflex"),
        BUN_INSTALL_CACHE_DIR=str(ROOT / ".tools" / "bun-cache"),
        PYTHONUNBUFFERED="1",
        LOCALAI_URL=standin_url,
        # Knowledge and memory embed with the stand-in's vectors (the bundled embedding server is the real-model
        # suite's, tests/llm).
        EMBEDDING_MODEL="standin-model",
        DATABASE_URL=f"sqlite:///{db_path}",
        DB_FLUSH_SECONDS="0.5",
        LLM_READ_TIMEOUT="3",
        LLM_CONNECT_TIMEOUT="2",
        LLM_RETRIES="0",
        MAX_MESSAGE_CHARS=str(MAX_MESSAGE_CHARS),
        MODELS_CACHE_TTL="60",
        FRONTEND_PORT=str(port),
        LOG_LEVEL="INFO",
        # Sign-in: the OIDC provider and local accounts side by side (a provider turns local sign-in off
        # unless LOCAL_LOGIN says otherwise). Every browser comes from 127.0.0.1, so the per-IP lockout is
        # out of reach; the per-account one is what test_10 exercises.
        AUTH_PROVIDERS=json.dumps([provider]),
        LOCAL_LOGIN="true",
        REQUIRE_APPROVAL="false",
        SECRET_KEY=secrets.token_hex(32),
        PASSWORD_MIN_LENGTH="10",
        LOGIN_MAX_FAILURES=str(LOGIN_MAX_FAILURES),
        LOGIN_IP_MAX_FAILURES="1000",
        # One e2e user sends far more chat requests per minute than a person: no per-user limits here.
        RATE_LIMIT_RPM="0",
        RATE_LIMIT_IP_RPM="0",
        TOKENS_PER_DAY="0",
        MAX_CONCURRENT_ANSWERS="0",
        CACHE_TTL="0",
        # The webhook receiver of test_18 listens on 127.0.0.2: that one address is let through the guard
        # (every other private address stays refused, as by default), and deliveries retry quickly.
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.2/32",
        WEBHOOK_RETRY_SCHEDULE="0,0.5,1",
        WEBHOOK_POLL_SECONDS="0.5",
    )
    for name in ("API_URL", "DEFAULT_MODEL", "LOCALAI_API_KEY", "DATA_DIR", "SYSTEM_PROMPT", "LLM_MAX_TOKENS"):
        env.pop(name, None)
    return env


def _live_group(pgid: int) -> list[psutil.Process]:
    """Processes of a process group that are still running (zombies do not count)."""
    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


@dataclass
class AppServer:
    """The production app as a subprocess (own process group) on one port."""

    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen | None = None
    starts: int = 0
    _logs: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL of the app."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 80) -> str:
        """The last lines of the server log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Start `reflex run --env prod` and wait for /api/health."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        log.write(f"\n===== start #{self.starts + 1} =====\n".encode())
        log.flush()
        self._logs.append(log)
        self.starts += 1
        self.proc = subprocess.Popen(
            ["reflex", "run", "--env", "prod", "--frontend-port", str(self.port), "--backend-port", str(self.port)],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited early ({self.proc.returncode}); log tail:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the app did not answer /api/health in {timeout} s; log tail:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the process group, wait, SIGKILL what is left."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        # The workers outlive the `reflex` leader while they shut down (saving live answers): let them finish.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not _live_group(proc.pid), timeout=20, what="the app's processes to exit")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait(5)
        wait_until(self._port_free, timeout=15, what=f"port {self.port} to be free")

    def _port_free(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) != 0

    def restart(self) -> None:
        """Stop the app and start it again on the same port and database."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop for good and close the log."""
        self.stop()
        for log in self._logs:
            log.close()


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def e2e_standin() -> Iterator[StandIn]:
    """The session's own LocalAI stand-in: 20 pieces per answer at about 40 pieces/s."""
    server = StandIn(StandInConfig(tokens=DEFAULT_TOKENS, token_rate=DEFAULT_RATE)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def standin(e2e_standin: StandIn) -> Iterator[StandIn]:
    """The stand-in with its default behaviour restored around each test (counters zeroed)."""
    e2e_standin.config = StandInConfig(tokens=DEFAULT_TOKENS, token_rate=DEFAULT_RATE)
    e2e_standin.reset()
    yield e2e_standin
    e2e_standin.config = StandInConfig(tokens=DEFAULT_TOKENS, token_rate=DEFAULT_RATE)


@pytest.fixture(autouse=True)
def _fresh_standin() -> None:
    """Replaces the root conftest's autouse fixture of this name: e2e tests use their own stand-in."""


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OIDCProvider]:
    """The session's OpenID Connect provider (oidc-provider-mock on a free loopback port)."""
    with run_oidc_provider() as provider:
        yield provider


@pytest.fixture(scope="session")
def app_server(e2e_standin: StandIn, oidc_provider: OIDCProvider) -> Iterator[AppServer]:
    """The production build on one free port, on a fresh SQLite database."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):  # screenshots of an earlier run would mislead
        old.unlink()
    tmp = Path(tempfile.mkdtemp(prefix="rubin-e2e-"))
    port = free_port()
    log_path = ARTIFACTS / "app-server.log"
    log_path.write_bytes(b"")
    env = app_environment(e2e_standin.url, tmp / "e2e.db", port, oidc_provider.issuer)
    env["DATA_DIR"] = str(tmp)
    server = AppServer(env=env, port=port, log_path=log_path)
    try:
        try:
            server.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server
    finally:
        server.close()
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- accounts


@pytest.fixture(scope="session")
def admin_account(app_server: AppServer) -> Account:
    """The first account of the fresh database, hence its admin (created before anyone else)."""
    account = Account(email="admin@e2e.example", password="admin-pass-e2e-1", name="E2E Admin")
    sign_up(app_server.url, account)
    return account


@pytest.fixture(scope="session")
def e2e_user(app_server: AppServer, admin_account: Account) -> Account:
    """The plain user the chat tests sign in as (each browser context with a session of its own)."""
    account = Account(email="user@e2e.example", password="user-pass-e2e-1", name="E2E User")
    sign_up(app_server.url, account)
    return account


@pytest.fixture
def make_account(app_server: AppServer, admin_account: Account) -> Callable[..., Account]:
    """Factory: a fresh local account (for tests that sign out everywhere, change a password, delete...)."""

    def make(prefix: str = "user", name: str = "") -> Account:
        return new_account(app_server.url, prefix, name=name)

    return make


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Debian Chromium with the flags this machine needs (never a downloaded browser)."""
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url(app_server: AppServer) -> str:
    """The app's URL (relative page.goto paths resolve against it)."""
    return app_server.url


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict, base_url: str) -> dict:
    """The app as base URL (open_page adds the locale and window size, which tests may change)."""
    return {**browser_context_args, "base_url": base_url}


DESKTOP = {"locale": "en-US", "viewport": {"width": 1280, "height": 800}}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]


@pytest.fixture
def open_page(
    new_context: Callable[..., BrowserContext], request: pytest.FixtureRequest, base_url: str, e2e_user: Account
) -> Iterator[Callable[..., Page]]:
    """Factory: a page in a new browser context (English desktop unless kwargs say otherwise).

    `signed_in=True` (the default) signs the context in as the e2e user with a session of its own;
    an `Account` signs in as that account; `False` gives an anonymous context. Other keyword arguments
    go to the browser context (locale, viewport, ...). Every page it made is screenshotted into
    test-artifacts/e2e/ when the test fails.
    """
    pages: list[Page] = []
    js_errors: list[str] = []

    def make(signed_in: bool | Account = True, **context_args: Any) -> Page:
        context = new_context(**{**DESKTOP, **context_args})
        context.set_default_timeout(15_000)
        context.on("weberror", lambda error: js_errors.append(str(error.error)))
        account = e2e_user if signed_in is True else signed_in or None
        if account is not None:
            add_session(context, base_url, session_token(base_url, account))
        page = context.new_page()
        pages.append(page)
        return page

    yield make
    failed = any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))
    if failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for i, page in enumerate(pages):
            if not page.is_closed():
                try:
                    page.screenshot(path=str(ARTIFACTS / f"{_safe(request.node.name)}-{i}.png"), full_page=True)
                except Exception as exc:  # a screenshot must not hide the real failure
                    print(f"screenshot failed: {exc}")
    elif js_errors:
        pytest.fail(f"uncaught JavaScript errors in the page: {js_errors}", pytrace=False)


@pytest.fixture
def page(open_page: Callable[..., Page]) -> Page:
    """A fresh desktop page in its own context."""
    return open_page()
