"""The container image, built and run for real: deploy/docker/Dockerfile with podman on a Debian base image made
from the Debian mirror (no registry here), against the LocalAI stand-in on the host (`--network host`).

What an operator sees: the image starts in seconds, answers its health check, serves the app, runs as a user
that is not root, keeps no secret in its layers; a person signs up, chats in a tab (the websocket) and through
the API, and everything is still there after the container is replaced by a new one on the same volume.

Timings on this machine (2 shared cores): warm (base image, layers and pip/bun caches kept) 1-1.5 minutes for
the module; cold (no image at all, empty caches) 3 minutes: mmdebstrap ~45 s, the first build ~1.5 min.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from bench.harness import sign_in
from bench.ws_client import Tab
from tests.fakes.localai_standin import StandIn, StandInConfig
from tests.fakes.redis_server import RedisServer

from . import podman

pytestmark = pytest.mark.slow

ARTIFACTS = podman.ROOT / "test-artifacts" / "container"
PREFERRED_PORT = 38417  # a fixed port keeps podman's layer cache warm (the port is built into the page)
EMAIL, PASSWORD = "ops@example.com", "container-pass-1234"
START_LIMIT = 60.0


@dataclass
class Running:
    """The container under test and what it talks to."""

    name: str
    volume: str
    base: str
    standin: StandIn
    started_in: float


def _port() -> int:
    """PREFERRED_PORT when free, else any free port (then the last build layers are made again)."""
    for port in (PREFERRED_PORT, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def _wait_healthy(base: str, name: str, limit: float) -> float:
    """Seconds until GET /api/health answers 200 (fails with the container's log after `limit`)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no 200 on /api/health within {limit} s; container log:\n{podman.logs(name)[-4000:]}")


def _start(name: str, volume: str, port: int, standin: StandIn) -> float:
    """Run the image (settings from the environment only) and wait until it is healthy."""
    podman.run_container(name, {"LOCALAI_URL": standin.url, "TITLE_MODE": "first_message"}, volume)
    return _wait_healthy(f"http://127.0.0.1:{port}", name, START_LIMIT)


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    """Base image (cached), image build (layers cached), the stand-in and one container on a fresh volume."""
    if missing := podman.missing_tools():
        pytest.fail(f"missing {', '.join(missing)}: scripts/test.sh installs them (apt)")
    podman.ensure_base_image()
    port = _port()
    podman.build_image(port, ARTIFACTS / "build.log")
    standin = StandIn(StandInConfig(tokens=12)).start()
    name, volume = "rubin-test", "rubin-test-data"
    podman.remove(name, volume)
    try:
        started = _start(name, volume, port, standin)
        yield Running(name, volume, f"http://127.0.0.1:{port}", standin, started)
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "container.log").write_text(podman.logs(name), encoding="utf-8")
        podman.remove(name, volume)
        standin.stop()


def test_the_image_runs_as_a_user_with_a_healthcheck_and_a_data_volume(running: Running) -> None:
    config = podman.image_config(podman.IMAGE)
    assert config["User"] == "10001:10001"
    assert "/data" in (config.get("Volumes") or {})
    health = config["Healthcheck"]
    assert isinstance(health, dict) and "/api/health" in " ".join(health["Test"])
    assert config["Cmd"] == ["python", "-m", "rubin_app.container", "serve"]
    # podman runs the image's HEALTHCHECK command inside the container: 0 = healthy.
    podman.podman("healthcheck", "run", running.name)
    whoami = podman.podman("exec", running.name, "python", "-c", "import os; print(os.getuid())").strip()
    assert whoami == "10001"


def test_no_secret_build_tool_or_source_checkout_extra_is_in_the_image(running: Running) -> None:
    probe = (
        "import glob, json, os, shutil; print(json.dumps({"
        "'found': [p for p in ['/run/secrets/ca', '/app/.env', '/app/data', '/opt/bun', '/app/.web/node_modules',"
        " '/app/tests', '/app/.git', '/app/.venv'] if os.path.exists(p)],"
        "'keys': glob.glob('/app/**/*.key', recursive=True) + glob.glob('/app/**/*.pem', recursive=True),"
        "'bun': shutil.which('bun'), 'env': [k for k in os.environ if 'SECRET' in k or k.endswith('_KEY')]}))"
    )
    out = json.loads(podman.podman("run", "--rm", "--network", "none", podman.IMAGE, "python", "-c", probe))
    assert out == {"found": [], "keys": [], "bun": None, "env": []}


def test_without_localai_url_it_refuses_to_start_and_says_why(running: Running) -> None:
    done = podman.podman("run", "--rm", "--network", "none", podman.IMAGE, check=False, stderr=True)
    assert "LOCALAI_URL is not set" in done and "no bundled engine" in done


def test_it_starts_in_seconds_and_serves_the_app(running: Running) -> None:
    assert running.started_in < START_LIMIT
    health = httpx.get(f"{running.base}/api/health", timeout=5).json()
    assert health["status"] == "ok" and health["localai"]["ok"] is True
    page = httpx.get(f"{running.base}/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    log = podman.logs(running.name)
    assert "serving the prebuilt app" in log and "Compiling" not in log  # nothing is built at start


async def _chat_in_a_tab(base: str, cookie: str, text: str) -> str:
    tab = Tab(base, cookie)
    try:
        await asyncio.wait_for(tab.open("/"), 30)
        await asyncio.sleep(1.0)  # the page's on_load (the chat list, the model list)
        await tab.send(text)
        assert await tab.wait_done(60), "the answer did not finish in the tab"
        return tab.text()
    finally:
        await tab.close()


def test_a_user_signs_up_chats_in_a_tab_and_through_the_api(running: Running) -> None:
    cookie = sign_in(running.base, EMAIL, PASSWORD, "Ops")
    answer = asyncio.run(_chat_in_a_tab(running.base, cookie, "Hello from a container"))
    assert answer.strip(), "no answer streamed to the tab"
    # An operator command inside the container: an API key for the user (printed once).
    key = podman.podman(
        "exec", running.name, "python", "-m", "rubin_app", "keys", "create", "--email", EMAIL, "--name", "ops"
    ).strip()
    assert key.startswith("rk-")
    headers = {"Authorization": f"Bearer {key}"}
    reply = httpx.post(
        f"{running.base}/v1/chat/completions", headers=headers, timeout=30,
        json={"model": "standin-model", "messages": [{"role": "user", "content": "And through the API?"}]},
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"].strip()
    chats = httpx.get(f"{running.base}/api/v1/conversations", headers=headers, timeout=10).json()
    titles = [c["title"] for c in chats["data"]]
    assert any(t.startswith("Hello from a container") for t in titles), titles


def test_data_survives_a_new_container_on_the_same_volume(running: Running) -> None:
    # An upgrade: the container is replaced (same image here), the volume stays; migrations run at start.
    podman.remove(running.name)
    started = _start(running.name, running.volume, int(running.base.rsplit(":", 1)[1]), running.standin)
    assert started < START_LIMIT
    with httpx.Client(base_url=running.base, timeout=30) as client:
        response = client.post("/auth/local/login", data={"email": EMAIL, "password": PASSWORD})
        assert "rubin_session" in response.cookies, response.headers.get("location")
    listing = podman.podman("exec", running.name, "python", "-m", "rubin_app", "keys", "list", "--email", EMAIL)
    assert "ops" in listing


def test_the_full_setup_postgresql_redis_and_several_workers(running: Running, postgres_url: str) -> None:
    # What compose's full profile gives the image: PostgreSQL and Redis (the host's here), two workers.
    redis = RedisServer().start()
    try:
        podman.remove(running.name)
        env = {"LOCALAI_URL": running.standin.url, "DATABASE_URL": postgres_url, "REDIS_URL": redis.url,
               "WORKERS": "2", "TITLE_MODE": "first_message"}  # fmt: skip
        podman.run_container(running.name, env, running.volume)
        _wait_healthy(running.base, running.name, START_LIMIT)
        health = httpx.get(f"{running.base}/api/health", timeout=5).json()
        assert health["status"] == "ok" and health["redis"]["ok"] is True, health
        cookie = sign_in(running.base, "pg@example.com", PASSWORD, "Pg")
        assert asyncio.run(_chat_in_a_tab(running.base, cookie, "Saved in PostgreSQL")).strip()
        with _pg_connect_url(postgres_url) as conn:
            users = [row[0] for row in conn.execute("SELECT email FROM users")]
        assert "pg@example.com" in users
    finally:
        redis.stop()


def _pg_connect_url(url: str) -> psycopg.Connection:
    """A psycopg connection for a SQLAlchemy postgresql+psycopg URL."""
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
