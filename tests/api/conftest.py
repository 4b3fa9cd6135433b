"""The auth routes served for real: uvicorn on a free loopback port, a migrated SQLite file, real OIDC providers.

`start_app(**settings)` sets the environment (like the root `app_env`, without the LocalAI stand-in),
clears the settings and runtime caches, copies a migrated database and serves `build_api()` in a
background thread. Tests talk to it with httpx (no redirects followed, one cookie jar per "browser")
and read the database directly to check what was (not) written.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, pool, text
from starlette.types import Receive, Scope, Send

from rubin_app import config as config_module
from rubin_app.api.routes import build_api
from rubin_app.services import db as db_module
from rubin_app.services import runtime as runtime_module
from rubin_app.services.migrate import upgrade_head
from rubin_app.services.sessions import COOKIE_NAME
from tests.fakes.oidc_provider import OIDCProvider, run_oidc_provider
from tests.loopback import free_socket

PASSWORD = "correct horse battery"


def _clear_caches() -> None:
    config_module.get_settings.cache_clear()
    runtime_module._runtime = None


class _ClosesOnShutdown:
    """The app plus a lifespan that closes the database engines and HTTP client in the server's own loop."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await runtime_module.get_runtime().start()  # as the app's lifespan does: bus, webhook delivery
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                rt = runtime_module._runtime
                if rt is not None:
                    close = getattr(rt, "close", None)  # newer runtimes close their own parts
                    await (close() if close is not None else rt.generation.shutdown())
                    await rt.client.aclose()
                await db_module.dispose_all()
                await send({"type": "lifespan.shutdown.complete"})
                return


@dataclass
class LiveApp:
    """A running app: its base URL and its database."""

    url: str
    db_url: str
    server: uvicorn.Server
    thread: threading.Thread
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def origin(self) -> str:
        """What a browser on this site sends as Origin."""
        return self.url

    def client(self) -> httpx.Client:
        """A fresh "browser": its own cookie jar, redirects not followed."""
        client = httpx.Client(base_url=self.url, follow_redirects=False, timeout=15)
        self.clients.append(client)
        return client

    def sign_up(self, client: httpx.Client, email: str, password: str = PASSWORD, **fields: str) -> httpx.Response:
        """POST the sign-up form as the login page does."""
        data = {"email": email, "password": password, "password2": password, **fields}
        return client.post("/auth/local/signup", data=data, headers={"Origin": self.origin})

    def log_in(self, client: httpx.Client, email: str, password: str = PASSWORD, **fields: str) -> httpx.Response:
        """POST the sign-in form as the login page does."""
        data = {"email": email, "password": password, **fields}
        return client.post("/auth/local/login", data=data, headers={"Origin": self.origin})

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the app's database."""
        engine = create_engine(self.db_url, poolclass=pool.NullPool)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql), params)]
        finally:
            engine.dispose()

    def user_count(self) -> int:
        """How many accounts exist."""
        return int(self.query("SELECT count(*) FROM users")[0][0])

    def stop(self) -> None:
        """Close the clients and stop the server (its lifespan closes the engines)."""
        for client in self.clients:
            client.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout=5)


def session_cookie(response: httpx.Response) -> dict[str, str] | None:
    """The rubin_session Set-Cookie of a response as {"value": ..., attribute (lower-case): value}, or None."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() != COOKIE_NAME:
            continue
        value, *attributes = rest.split(";")
        parsed = {"value": value.strip()}
        for attribute in attributes:
            key, _, val = attribute.strip().partition("=")
            parsed[key.lower()] = val
        return parsed
    return None


def login_error(response: httpx.Response) -> dict[str, list[str]]:
    """The query of a redirect to /login (asserting it is one)."""
    assert response.status_code in (302, 303), (response.status_code, response.text[:300])
    location = urlsplit(response.headers["location"])
    assert location.path == "/login", response.headers["location"]
    return parse_qs(location.query)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; each app gets a copy."""
    path = tmp_path_factory.mktemp("template") / "rubin.db"
    upgrade_head(f"sqlite:///{path}")
    return path


@pytest.fixture
def start_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, migrated_template: Path
) -> Iterator[Callable[..., LiveApp]]:
    """Factory: serve the auth routes with these settings (field=value; lists/dicts become JSON)."""
    monkeypatch.chdir(tmp_path)  # no developer .env leaks in
    for name in config_module.Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    running: list[LiveApp] = []

    def start(**settings: Any) -> LiveApp:
        assert not running, "one app at a time: the settings and runtime are process-wide"
        db_path = tmp_path / "rubin.db"
        shutil.copy(migrated_template, db_path)
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{db_path}",
            "data_dir": str(tmp_path / "data"),
            "secret_key": secrets.token_hex(32),
            "localai_url": "http://127.0.0.1:9",  # never contacted by these routes
            **settings,
        }
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(name.upper(), raising=False)
            else:
                encoded = json.dumps(value) if isinstance(value, list | dict) else str(value)
                monkeypatch.setenv(name.upper(), encoded)
        _clear_caches()
        config_module.get_settings()  # fail here, readably, on invalid settings

        sock = free_socket()
        port = sock.getsockname()[1]
        cfg = uvicorn.Config(
            _ClosesOnShutdown(build_api()), log_level="warning", lifespan="on", http="h11", ws="none",
            loop="asyncio", timeout_graceful_shutdown=2,
        )  # fmt: skip
        server = uvicorn.Server(cfg)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="rubin-api")
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app server did not start")
            time.sleep(0.01)
        app = LiveApp(url=f"http://127.0.0.1:{port}", db_url=f"sqlite:///{db_path}", server=server, thread=thread)
        running.append(app)
        return app

    yield start
    for app in running:
        app.stop()
    _clear_caches()


# --------------------------------------------------------------------------- OIDC providers


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OIDCProvider]:
    """A well-behaved provider for the whole session."""
    with run_oidc_provider() as provider:
        yield provider


@pytest.fixture(scope="session")
def expired_oidc_provider() -> Iterator[OIDCProvider]:
    """A provider whose ID tokens expired ten minutes before they were issued."""
    with run_oidc_provider(access_token_max_age=timedelta(seconds=-600)) as provider:
        yield provider


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port
