"""Several workers sharing Redis: the production build of Rubin AI with REDIS_URL and WORKERS=3.

One `reflex run --env prod` for the session, built in an isolated copy of the sources (never in the
repository's own .web, which the e2e suite uses), with its own redis-server and LocalAI stand-in and a
SQLite file of the run. Tests drive it with headless tabs (bench.ws_client.Tab) through `helpers.run`.
Every test in this folder is marked `multiworker` and runs in the first session of scripts/test.sh.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import ROOT, free_port, isolated_copy, settings_env, sign_in, start_app, stop_app
from tests.fakes.localai_standin import StandIn, StandInConfig
from tests.fakes.redis_server import RedisServer

from .helpers import METRICS_TOKEN, PASSWORD, WORKERS, Cluster

ARTIFACTS = ROOT / "test-artifacts" / "multiworker"
STARTUP_TIMEOUT = 240.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is a multi-worker test."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.multiworker)


def environment(standin_url: str, redis_url: str, db_path: Path, data_dir: Path, port: int) -> dict[str, str]:
    """The app's environment: no setting leaks in from the shell; three workers on one Redis."""
    return settings_env(
        standin_url,
        db_path,
        data_dir,
        port,
        REDIS_URL=redis_url,
        WORKERS=str(WORKERS),
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
        TITLE_MODE="first_message",
        DB_FLUSH_SECONDS="0.2",
        LLM_RETRIES="0",
        LLM_READ_TIMEOUT="10",
        LLM_TEMPERATURE="0",  # every answer is cacheable: the cache test needs it, the others use new questions
        CACHE_TTL="3600",
        RATE_LIMIT_RPM="0",
        RATE_LIMIT_IP_RPM="0",
        TOKENS_PER_DAY="0",
        MAX_CONCURRENT_ANSWERS="0",
        LOGIN_IP_MAX_FAILURES="1000",
        SIGNUP_IP_MAX_PER_HOUR="100000",  # every sign-up comes from 127.0.0.1 (as in bench/cluster.py)
        REQUIRE_APPROVAL="false",
        SECRET_KEY=secrets.token_hex(32),
        METRICS_TOKEN=METRICS_TOKEN,
    )


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The running app (built once per session), its Redis and its stand-in."""
    tmp = tmp_path_factory.mktemp("multiworker")
    root = isolated_copy(tmp / "app")
    redis_server = RedisServer().start()
    standin = StandIn(StandInConfig(tokens=20, token_rate=50)).start()
    port = free_port()
    db_path, log_path = tmp / "rubin.db", tmp / "app.log"
    proc = None
    try:
        env = environment(standin.url, redis_server.url, db_path, tmp / "data", port)
        proc = start_app(env, log_path, timeout=STARTUP_TIMEOUT, root=root)
        base = f"http://127.0.0.1:{port}"
        admin = sign_in(base, "admin@multiworker.example", PASSWORD, name="Admin")  # the first account: admin
        yield Cluster(base, port, proc, redis_server, standin, db_path, log_path, admin)
    finally:
        if proc is not None:
            stop_app(proc)
        standin.stop()
        redis_server.close()
        if log_path.exists():
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(log_path, ARTIFACTS / "app.log")
        shutil.rmtree(root, ignore_errors=True)  # the build (.web) is large


@pytest.fixture
def app(cluster: Cluster) -> Cluster:
    """The cluster with Redis running and every worker healthy (a test may have stopped Redis)."""
    if cluster.redis.proc is None or cluster.redis.proc.poll() is not None:
        cluster.redis.start()
    cluster.wait_health("ok", timeout=30)
    return cluster
