"""The processes bench/gateway_bench.py measures: the LocalAI stand-in, LiteLLM's proxy and Rubin.

Each runs in processes of its own on loopback; every `start_*` returns a `Gateway` (its /v1 base URL, the
key to send, the process whose tree is measured, how to stop it) or raises `BenchError` with a message for
the user (printed without a traceback).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench.harness import ROOT, free_port, isolated_copy, settings_env, sign_in, start_app, stop_app
from tests.fakes import localai_standin
from tests.fakes.localai_standin import StandIn
from tests.fakes.redis_server import RedisServer

MODEL = "standin-model"
LITELLM_VENV = ROOT / ".tools" / "litellm-venv"
LIMIT_RPM = 1_000_000  # per key (LiteLLM) / per user and IP (Rubin): checked on every request, never reached
LIMIT_PARALLEL = 1_000  # requests one key (LiteLLM) / one user (Rubin) may have in flight


class BenchError(Exception):
    """Something the user must fix (or wait for) before the benchmark can run: printed, no traceback."""


@dataclass
class Gateway:
    """One target: where to send requests, with which key, and the process tree it runs in."""

    name: str
    url: str  # base URL ending in /v1
    key: str | None
    proc: subprocess.Popen
    stop: Callable[[], None]
    notes: list[str] = field(default_factory=list)

    def processes(self) -> list[psutil.Process]:
        """The process and all its descendants (workers, resource trackers)."""
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_mb(self) -> float:
        """Resident memory of the whole process tree, MB."""
        return sum(_safe(lambda p: p.memory_info().rss, p, 0) for p in self.processes()) / 1e6

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the process tree."""
        return sum(_safe(lambda p: sum(p.cpu_times()[:2]), p, 0.0) for p in self.processes())

    def foreign_connections(self) -> list[str]:
        """Open internet connections to anywhere but loopback (there should be none: no telemetry)."""
        out = []
        for p in self.processes():
            for conn in _safe(lambda p: p.net_connections("inet"), p, []):
                if conn.raddr and not ipaddress.ip_address(conn.raddr.ip).is_loopback:
                    out.append(f"{p.pid} -> {conn.raddr.ip}:{conn.raddr.port}")
        return out


def _safe(fn, proc: psutil.Process, default):
    try:
        return fn(proc)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return default


def _terminate(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{url} exited with {proc.returncode} before answering; see {log}")
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise BenchError(f"{url} did not answer within {timeout:.0f} s; see {log}")


class NoDelayStandIn(StandIn):
    """The stand-in with TCP_NODELAY on its connections. Its listening socket is made with proto 0, so asyncio
    (which sets TCP_NODELAY only when sock.proto == IPPROTO_TCP) leaves Nagle on: on a kept-alive connection
    the body then waits for the client's delayed ACK of the headers, 40 ms per request with httpx."""

    def _make_server(self):
        server, sock = super()._make_server()
        return server, socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())


def start_standin(tokens: int, log: Path) -> Gateway:
    """The LocalAI stand-in in its own process (as LocalAI is), answering at once with `tokens` pieces."""
    port = free_port()
    args = ["--port", str(port), "--tokens", str(tokens), "--rate", "0", "--ttft", "0", "--models", MODEL]
    with open(log, "wb") as out:  # this module's __main__: the stand-in's CLI with NoDelayStandIn
        proc = subprocess.Popen([sys.executable, "-m", "bench.gateway_targets", *args], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{port}/readyz", proc, 30, log)
    except BaseException:
        _terminate(proc)
        raise
    return Gateway("direct", f"http://127.0.0.1:{port}/v1", None, proc, lambda: _terminate(proc))


# ----------------------------------------------------------------------------------------------- LiteLLM

# LiteLLM's virtual keys live in its database through Prisma, whose query/schema engines `prisma generate`
# downloads from binaries.prisma.sh: no registry this machine reaches serves them, so virtual keys cannot run
# here. The keys are LiteLLM's custom_auth hook instead: it returns each key's UserAPIKeyAuth with its own
# rpm/tpm/parallel limits, which LiteLLM's parallel-request limiter (the same hook that enforces a virtual key's
# limits) checks on every request, shared by the workers through Redis (general_settings.coordination_redis).
LITELLM_AUTH = '''
"""Bench keys for LiteLLM's proxy (custom_auth): per-key limits, enforced by LiteLLM's own rate limiter."""
from fastapi import HTTPException, Request
from litellm.proxy._types import UserAPIKeyAuth

KEYS = {KEYS!r}


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    limits = KEYS.get(api_key)
    if limits is None:
        raise HTTPException(status_code=401, detail="invalid api key")
    return UserAPIKeyAuth(api_key=api_key, **limits)
'''


def litellm_keys() -> dict[str, dict[str, int]]:
    """The bench key (limits never reached) and a key limited to 2 requests a minute (to show limits are on)."""
    return {
        "sk-bench-" + secrets.token_hex(8): {"rpm_limit": LIMIT_RPM, "tpm_limit": 10**12,
                                             "max_parallel_requests": LIMIT_PARALLEL},
        "sk-limited-" + secrets.token_hex(8): {"rpm_limit": 2, "tpm_limit": 10**12, "max_parallel_requests": 10},
    }  # fmt: skip


def litellm_config(standin_v1: str, redis_port: int | None, master_key: str) -> str:
    """LiteLLM proxy config (YAML is a superset of JSON): one model routed to the stand-in, no callbacks."""
    import json

    general: dict = {"master_key": master_key, "custom_auth": "bench_litellm_auth.user_api_key_auth",
                     "custom_auth_run_common_checks": True}  # fmt: skip
    if redis_port is not None:
        general["coordination_redis"] = {"host": "127.0.0.1", "port": redis_port}
    config = {
        "model_list": [{"model_name": MODEL, "litellm_params": {"model": f"openai/{MODEL}", "api_base": standin_v1,
                                                                 "api_key": "none"}}],
        "general_settings": general,
        "litellm_settings": {"telemetry": False, "callbacks": [], "success_callback": [], "failure_callback": []},
    }  # fmt: skip
    return json.dumps(config, indent=2)


def start_litellm(standin_v1: str, workers: int, use_redis: bool, workdir: Path, log: Path) -> Gateway:
    """`litellm --config ... --num_workers N` from .tools/litellm-venv (bench/setup_litellm.sh installs it)."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if not exe.exists():
        raise BenchError(f"LiteLLM is not installed in {LITELLM_VENV}: run bench/setup_litellm.sh first")
    workdir.mkdir(parents=True, exist_ok=True)
    keys = litellm_keys()
    bench_key, limited_key = list(keys)
    (workdir / "bench_litellm_auth.py").write_text(LITELLM_AUTH.replace("{KEYS!r}", repr(keys)))
    redis = RedisServer().start() if use_redis else None
    config = workdir / "config.yaml"
    config.write_text(litellm_config(standin_v1, redis.port if redis else None, "sk-master-" + secrets.token_hex(8)))
    port = free_port()
    env = {  # nothing leaks in from the shell (DATABASE_URL, REDIS_*, proxies...)
        "PATH": f"{LITELLM_VENV / 'bin'}:/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the model cost map
        "LITELLM_LOG": "ERROR",  # LiteLLM's production advice; also turns uvicorn's access log off
        "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True", "DISABLE_ADMIN_UI": "True", "NO_DOCS": "True",
        "PYTHONUNBUFFERED": "1",
    }  # fmt: skip
    cmd = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
           "--num_workers", str(workers)]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip

    def stop() -> None:
        stop_app(proc)  # the whole process group: uvicorn's workers too
        if redis is not None:
            redis.close()

    try:
        _wait_http(f"http://127.0.0.1:{port}/v1/models", proc, 120, log, {"Authorization": f"Bearer {bench_key}"})
    except BaseException:
        stop()
        raise
    gw = Gateway("litellm", f"http://127.0.0.1:{port}/v1", bench_key, proc, stop)
    gw.notes.append(f"limited_key={limited_key}")
    return gw


# ----------------------------------------------------------------------------------------------- Rubin
# The contract this section is written against (docs/api.md; the only place to change if it moves):
#   GET /v1/models and POST /v1/chat/completions (stream and not) on the production server's port,
#   `Authorization: Bearer <key>`, the key printed (stdout, last line) by
#   `python -m rubin_app keys create --email E --name N [--scopes chat] [--rpm N]` for an existing user.

RUBIN_EMAIL = "gateway-bench@example.com"
RUBIN_PASSWORD = "gateway-bench-password-1234"


def _rubin_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rubin_app", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def require_rubin_api() -> None:
    """Fail fast (before a production build) when `python -m rubin_app keys` does not exist yet."""
    done = _rubin_cli(["keys", "create", "--help"], dict(os.environ), ROOT)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise BenchError(
            "Rubin's OpenAI-compatible API is not there yet: `python -m rubin_app keys create --help` failed "
            f"({last[0]}). Run with --targets direct,litellm until it lands."
        )


def _create_key(env: dict[str, str], cwd: Path, name: str, rpm: int) -> str:
    args = ["keys", "create", "--email", RUBIN_EMAIL, "--name", name, "--scopes", "chat", "--rpm", str(rpm)]
    done = _rubin_cli(args, env, cwd)
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise BenchError(f"`python -m rubin_app keys create` failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return lines[-1].split()[-1]  # the key is printed last


def start_rubin(standin_v1: str, workers: int, workdir: Path, log: Path) -> Gateway:
    """Rubin's production app (`reflex run --env prod`, as bench/harness.py starts it) on a copy of the sources,
    `workers` workers sharing a Redis (Rubin's way to run several), a user and an API key for it."""
    require_rubin_api()
    workdir.mkdir(parents=True, exist_ok=True)
    root = isolated_copy(workdir / "app")  # this build never touches ./.web
    redis = RedisServer().start()
    port = free_port()
    env = settings_env(
        standin_v1.removesuffix("/v1"), workdir / "rubin.db", workdir / "data", port,
        REDIS_URL=redis.url, WORKERS=str(workers), LOG_LEVEL="WARNING", SECRET_KEY=secrets.token_hex(32),
        RATE_LIMIT_RPM=str(LIMIT_RPM), RATE_LIMIT_IP_RPM=str(LIMIT_RPM), MAX_CONCURRENT_ANSWERS=str(LIMIT_PARALLEL),
        TOKENS_PER_DAY="0", CACHE_TTL="3600", REQUIRE_APPROVAL="false", LOGIN_IP_MAX_FAILURES="1000",
        TITLE_MODE="first_message", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    env.pop("GRANIAN_WORKERS", None)
    try:
        app = start_app(env, log, root=root)
    except (RuntimeError, TimeoutError) as exc:
        redis.close()
        raise BenchError(f"Rubin did not start: {exc}") from None

    def stop() -> None:
        stop_app(app)
        redis.close()
        shutil.rmtree(root, ignore_errors=True)

    try:
        base = f"http://127.0.0.1:{port}"
        sign_in(base, RUBIN_EMAIL, RUBIN_PASSWORD, name="Gateway bench")
        key = _create_key(env, root, "gateway-bench", LIMIT_RPM)
        limited_key = _create_key(env, root, "gateway-bench-limited", 2)
        models = httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        if models.status_code != 200 or MODEL not in models.text:
            raise BenchError(f"Rubin's GET /v1/models answered {models.status_code}: {models.text[:300]!r}")
    except (RuntimeError, httpx.HTTPError) as exc:
        stop()
        raise BenchError(f"Rubin started but its API could not be used: {exc}") from None
    except BaseException:
        stop()
        raise
    gw = Gateway("rubin", f"{base}/v1", key, app, stop)
    gw.notes.append(f"limited_key={limited_key}")
    return gw


if __name__ == "__main__":
    localai_standin.StandIn = NoDelayStandIn  # main() builds the module's StandIn
    localai_standin.main()
