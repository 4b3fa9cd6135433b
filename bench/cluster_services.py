"""The real services a Rubin cluster on one machine stands on, each a process the harness can stop, kill and start
again on the same port: PostgreSQL (Debian's server binaries), the LocalAI stand-in, haproxy in front."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.harness import ROOT, free_port


def wait_for(check: object, timeout: float, what: str) -> None:
    """Poll a no-argument callable until it returns truthy."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen in {timeout} s")
        time.sleep(0.1)


class PostgresServer:
    """A throwaway PostgreSQL cluster (initdb once, fsync off) that can be restarted on the same port."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
        if not bins:
            raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql (scripts/test.sh)")
        self.bindir = Path(bins[-1]).parent
        self.base = Path(tempfile.mkdtemp(prefix="rubin-cluster-pg-"))
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.base, "postgres", "postgres")
        self.port = free_port()
        self._pg(["initdb", "-D", str(self.base / "data"), "-A", "trust", "--no-sync", "-U", "postgres"])

    def _pg(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        full = [str(self.bindir / cmd[0]), *cmd[1:]]
        if self.as_root:
            full = ["runuser", "-u", "postgres", "--", *full]
        result = subprocess.run(full, capture_output=True, text=True, timeout=120, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {result.stdout}{result.stderr}")
        return result

    @property
    def url(self) -> str:
        """The database Rubin uses (created by `start` the first time)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/rubin"

    def start(self) -> PostgresServer:
        """Start (or start again) and make sure the database exists."""
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=300"
        )
        log = str(self.base / "server.log")
        self._pg(["pg_ctl", "-D", str(self.base / "data"), "-l", log, "-o", options, "-w", "start"])
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'rubin'").fetchone():
                conn.execute("CREATE DATABASE rubin")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop: `fast` (a restart by an operator) or `immediate` (a crash)."""
        self._pg(["pg_ctl", "-D", str(self.base / "data"), "-m", mode, "-w", "stop"], check=False)

    def close(self) -> None:
        """Stop and remove the cluster."""
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


class StandInProcess:
    """The LocalAI stand-in in a process of its own (as LocalAI is), killable and restartable on its port."""

    def __init__(self, rate: float = 20.0, tokens: int = 20, port: int = 0) -> None:
        self.rate, self.tokens, self.port = rate, tokens, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> StandInProcess:
        """Start and wait until /readyz answers."""
        args = ["--port", str(self.port), "--rate", f"{self.rate:g}", "--tokens", str(self.tokens)]
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.localai_standin", *args], cwd=ROOT)
        wait_for(self.ready, 30, "the LocalAI stand-in to answer /readyz")
        return self

    def ready(self) -> bool:
        """Whether it answers right now."""
        try:
            return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """kill -9: every stream it was sending breaks off."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


HAPROXY_CONFIG = """\
global
    maxconn 8000
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout check 3s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout client-fin 5s
    timeout http-request 15s
    timeout queue 15s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend rubin
    bind 127.0.0.1:{port}
    default_backend rubin_instances

backend rubin_instances
    balance roundrobin
    option httpchk GET /api/health
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2 on-marked-down shutdown-sessions
{servers}
"""


class HAProxy:
    """Debian's haproxy: round robin, no stickiness, health checks on /api/health; reloads softly (-sf)."""

    def __init__(self, backends: list[int], workdir: Path, port: int = 0) -> None:
        binary = shutil.which("haproxy")
        if binary is None:
            raise RuntimeError("haproxy is not installed: apt-get install haproxy (scripts/test.sh installs it)")
        self.binary, self.backends, self.port = binary, backends, port or free_port()
        self.config = workdir / "haproxy.cfg"
        self.socket = workdir / "haproxy.sock"
        self.log = workdir / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.retired: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The address users reach Rubin at."""
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        """haproxy.cfg for the current backends."""
        servers = "\n".join(f"    server i{i} 127.0.0.1:{p} check" for i, p in enumerate(self.backends, 1))
        text = HAPROXY_CONFIG.format(socket=self.socket, port=self.port, servers=servers)
        self.config.write_text(text)
        subprocess.run([self.binary, "-c", "-q", "-f", str(self.config)], check=True, timeout=30)

    def start(self, previous: int | None = None) -> HAProxy:
        """Start haproxy; with `previous`, the new process takes over and the old one finishes its connections."""
        self.write_config()
        args = [self.binary, "-f", str(self.config), *(["-sf", str(previous)] if previous else [])]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._listening, 10, "haproxy to listen")
        return self

    def _listening(self) -> bool:
        try:
            httpx.get(self.url + "/api/health", timeout=2)
            return True
        except httpx.HTTPError:
            return False

    def command(self, line: str) -> str:
        """One command on haproxy's admin socket (e.g. `show stat`, `set server b/s state drain`)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def reload(self) -> None:
        """A soft reload (`haproxy -sf <old pid>`), as an operator's config change does."""
        old = self.proc
        assert old is not None
        self.start(previous=old.pid)
        self.retired.append(old)

    def stop(self) -> None:
        """Stop every haproxy process this object started."""
        for proc in [*self.retired, *([self.proc] if self.proc else [])]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
