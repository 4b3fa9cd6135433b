"""A Rubin cluster on one machine: N production instances (each with several workers) behind haproxy, sharing one
redis-server, one PostgreSQL and the LocalAI stand-in — and the faults an operator meets (tests/cluster, benches).

The frontend is built once (bench/cluster_serve.py) in an isolated copy of the sources and served by every
instance; each instance has its own port and DATA_DIR, all share SECRET_KEY and ENCRYPTION_KEY.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.cluster_services import HAProxy, PostgresServer, StandInProcess, wait_for
from bench.harness import free_port, isolated_copy, settings_env, sign_in
from tests.fakes.redis_server import RedisServer
from tests.sealed import open_value

PASSWORD = "cluster-password-1"
STARTUP_TIMEOUT = 120.0


@dataclass
class Instance:
    """One Rubin instance: `reflex run --env prod` of the shared build on its own port and DATA_DIR."""

    name: str
    port: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        """Whether /api/health answers 200 (what haproxy checks)."""
        try:
            return httpx.get(self.url + "/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class _Qmark:
    """A psycopg connection taking sqlite's `?` placeholders (tests/sealed.py reads through one)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), params)


class Cluster:
    """Start with `with Cluster(workdir) as c:`; faults: kill/stop/start instances, Redis, PostgreSQL, LocalAI, LB."""

    def __init__(self, workdir: Path | None = None, instances: int = 2, workers: int = 2, rate: float = 20.0) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="rubin-cluster-"))
        self.workers = workers
        self.redis = RedisServer()
        self.postgres: PostgresServer | None = None
        self.standin = StandInProcess(rate=rate)
        self.lb = HAProxy([], self.workdir)
        self.instances = [
            Instance(f"i{i}", free_port(), self.workdir / f"data{i}", self.workdir / f"i{i}.log")
            for i in range(1, instances + 1)
        ]
        self.lb.backends = [inst.port for inst in self.instances]
        self.root = self.workdir / "app"
        self.key_file = self.workdir / "encryption.key"
        self.secrets = {
            "SECRET_KEY": secrets.token_hex(32),
            "ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        }
        self.admin_cookie = ""

    # ---- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Services, one build, every instance healthy, the load balancer, the first (admin) account."""
        self.redis.start()
        self.postgres = PostgresServer().start()
        self.standin.start()
        self.key_file.write_text(self.secrets["ENCRYPTION_KEY"])
        self.key_file.chmod(0o600)
        isolated_copy(self.root)
        self.build()
        for inst in self.instances:
            self.start_instance(inst, wait=False)
        for inst in self.instances:
            self.wait_healthy(inst)
        self.lb.start()
        self.admin_cookie = sign_in(self.url, "admin@cluster.example", PASSWORD, name="Admin")

    def close(self) -> None:
        """Stop everything and keep the logs next to the work directory."""
        self.lb.stop()
        for inst in self.instances:
            self.stop_instance(inst)
        self.standin.stop()
        self.redis.close()
        if self.postgres is not None:
            self.postgres.close()
        shutil.rmtree(self.root, ignore_errors=True)  # the build is large; logs stay in workdir

    @property
    def url(self) -> str:
        """Where users reach Rubin: the load balancer."""
        return self.lb.url

    def env(self, inst: Instance) -> dict[str, str]:
        """An instance's settings: nothing leaks in from the shell."""
        assert self.postgres is not None
        env = settings_env(
            self.standin.url, self.workdir / "unused.db", inst.data_dir, inst.port,
            REDIS_URL=self.redis.url, WORKERS=str(self.workers), API_URL=self.url, PYTHONUNBUFFERED="1",
            LOG_LEVEL="WARNING", TITLE_MODE="first_message", DB_FLUSH_SECONDS="0.5", LLM_READ_TIMEOUT="15",
            RATE_LIMIT_RPM="0", RATE_LIMIT_IP_RPM="0", TOKENS_PER_DAY="0", MAX_CONCURRENT_ANSWERS="0",
            LOGIN_IP_MAX_FAILURES="100000", SIGNUP_IP_MAX_PER_HOUR="100000", WS_CONNECTIONS_PER_IP="100000",
            REQUIRE_APPROVAL="false", **self.secrets,
        )  # fmt: skip
        env["DATABASE_URL"] = self.postgres.url
        return env

    def build(self) -> None:
        """Compile and build the frontend once for every instance (the API URL is the load balancer's)."""
        env = self.env(self.instances[0])
        log = self.workdir / "build.log"
        with open(log, "wb") as out:
            cmd = [sys.executable, "-m", "bench.cluster_serve", "build", "--port", str(self.instances[0].port)]
            done = subprocess.run(cmd, cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"the production build failed; see {log}")

    # ---- instances ------------------------------------------------------------------------------
    def start_instance(self, inst: Instance, wait: bool = True) -> None:
        """Serve the shared build on the instance's port (its own process group)."""
        inst.data_dir.mkdir(mode=0o700, exist_ok=True)
        cmd = [sys.executable, "-m", "bench.cluster_serve", "serve", "--port", str(inst.port)]
        with open(inst.log, "ab") as log:
            inst.proc = subprocess.Popen(
                cmd, cwd=self.root, env=self.env(inst), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if wait:
            self.wait_healthy(inst)

    def wait_healthy(self, inst: Instance, timeout: float = STARTUP_TIMEOUT) -> None:
        """Until the instance answers /api/health (fails early when it exits)."""

        def ready() -> bool:
            if not inst.alive():
                raise RuntimeError(f"instance {inst.name} exited; see {inst.log}")
            return inst.healthy()

        wait_for(ready, timeout, f"instance {inst.name} to be healthy")

    def kill_instance(self, inst: Instance) -> None:
        """kill -9 of the instance's every process (a crashed machine or an OOM kill)."""
        if inst.proc is not None:
            _signal_group(inst.proc, signal.SIGKILL)
            inst.proc.wait(10)

    def stop_instance(self, inst: Instance, timeout: float = 30.0) -> None:
        """SIGTERM to the instance (a deploy stopping it) and wait until every process has exited."""
        if inst.proc is None:
            return
        _signal_group(inst.proc, signal.SIGTERM)
        try:
            inst.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(inst.proc, signal.SIGKILL)
            inst.proc.wait(10)
        deadline = time.monotonic() + 10  # granian's workers may outlive the supervisor by a moment
        while _group_alive(inst.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def rolling_restart(self) -> None:
        """A deploy: each instance in turn gets SIGTERM, is started again and is healthy before the next."""
        for inst in self.instances:
            self.stop_instance(inst)
            self.start_instance(inst)
            self.wait_in_lb(inst)

    def wait_in_lb(self, inst: Instance, timeout: float = 10.0) -> None:
        """Until haproxy's checks see the instance up again (rise 2 x 500 ms)."""
        name = f"i{self.instances.index(inst) + 1}"

        def up() -> bool:
            rows = [line.split(",") for line in self.lb.command("show stat").splitlines() if "," in line]
            return any(row[1] == name and row[17] == "UP" for row in rows if len(row) > 17)

        wait_for(up, timeout, f"haproxy to see {inst.name} up")

    # ---- what users left behind -------------------------------------------------------------------
    def answers_of(self, email: str) -> list[tuple[str, str, str]]:
        """(role, text, status) of every message of a user, oldest first (opened with the cluster's key)."""
        import psycopg

        assert self.postgres is not None
        sql = (
            "SELECT m.role, m.user_id, m.content, m.status FROM messages m JOIN users u ON u.id = m.user_id "
            "WHERE u.email = %s ORDER BY m.conversation_id, m.id"
        )
        with psycopg.connect(self.postgres.url, connect_timeout=10) as conn:
            rows = conn.execute(sql, (email,)).fetchall()
            db = _Qmark(conn)
            return [(r, open_value(db, self.key_file, uid, "messages.content", c), s) for r, uid, c, s in rows]  # type: ignore[arg-type]

    def latest_conversation(self, email: str) -> str:
        """The id of the user's newest conversation ("" when none)."""
        import psycopg

        assert self.postgres is not None
        sql = (
            "SELECT c.id FROM conversations c JOIN users u ON u.id = c.user_id WHERE u.email = %s "
            "ORDER BY c.created_at DESC LIMIT 1"
        )
        with psycopg.connect(self.postgres.url, connect_timeout=10) as conn:
            row = conn.execute(sql, (email,)).fetchone()
        return str(row[0]) if row else ""

    def log_text(self) -> str:
        """Every instance's log."""
        return "\n".join(f"==> {i.name}\n{i.log.read_text(errors='replace')}" for i in self.instances if i.log.exists())


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
