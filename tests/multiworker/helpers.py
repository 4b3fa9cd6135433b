"""A production Rubin with several workers sharing Redis, seen through headless tabs (bench.ws_client.Tab).

Which worker serves a connection is read from the operating system: the worker process holding the
server end of the tab's TCP connection (psutil), so a test can make sure it spans the workers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import json
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil
import redis

from bench.harness import sign_in
from bench.ws_client import CHAT, STATE, Tab
from tests.fakes.localai_standin import StandIn, reply_to
from tests.fakes.redis_server import RedisServer
from tests.sealed import open_value

WORKERS = 3
AUTH = f"{STATE}.rubin_app___state___auth____auth_state"
PASSWORD = "multiworker-password-1"
METRICS_TOKEN = "multiworker-metrics-token-0123456789"  # GET /metrics (tests/multiworker/test_metrics.py)
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
    """`asyncio.run` in a thread of its own, so the session's pytest-asyncio loop is never touched."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, asyncio.wait_for(coro, timeout)).result()


def wait_until(predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.05, what: str = "") -> T:
    """Poll a condition until it is truthy; its value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


async def until(predicate: Callable[[], T], timeout: float = 15.0, what: str = "") -> T:
    """`wait_until` inside the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def unique(prefix: str) -> str:
    """A word no other test uses (answers are cached at temperature 0: questions must differ)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


expected = reply_to  # the whole answer the stand-in gives to a message


@dataclass
class Cluster:
    """The app under test and what it talks to."""

    base: str
    port: int
    proc: subprocess.Popen
    redis: RedisServer
    standin: StandIn
    db_path: Path
    log_path: Path
    admin_cookie: str = ""  # the first account's session: /api/health shows cache counters to admins only

    # ---- workers -----------------------------------------------------------------------------
    def _processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def owner(self, local: tuple[str, int]) -> int | None:
        """The app process holding the server end of a loopback connection from `local`."""
        for process in self._processes():
            try:
                connections = process.net_connections("tcp")
            except psutil.NoSuchProcess:
                continue
            if any(c.raddr and (c.raddr.ip, c.raddr.port) == tuple(local[:2]) for c in connections):
                return process.pid
        return None

    def worker_of(self, tab: Tab) -> int:
        """The worker serving a tab's websocket."""
        local = tab.ws.local_address
        return wait_until(lambda: self.owner(local), timeout=5, what=f"the worker of {local}")

    def health_by_worker(self, attempts: int = 60, as_admin: bool = False) -> dict[int, dict[str, Any]]:
        """GET /api/health once on every worker: new connections until each worker has answered one."""
        answers: dict[int, dict[str, Any]] = {}
        for _ in range(attempts):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.connect()
                pid = wait_until(lambda c=conn: self.owner(c.sock.getsockname()), timeout=5, what="the health worker")
                if pid in answers:
                    continue
                headers = {"Cookie": f"rubin_session={self.admin_cookie}"} if as_admin else {}
                conn.request("GET", "/api/health", headers=headers)
                answers[pid] = json.loads(conn.getresponse().read())
            finally:
                conn.close()
            if len(answers) == WORKERS:
                return answers
        raise AssertionError(f"only {len(answers)} of {WORKERS} workers answered /api/health: {answers}")

    def wait_health(self, status: str, timeout: float = 30.0) -> dict[int, dict[str, Any]]:
        """Poll until every worker's /api/health says `status`; returns the answers."""
        last: dict[int, dict[str, Any]] = {}

        def check() -> dict[int, dict[str, Any]] | None:
            nonlocal last
            last = self.health_by_worker()
            return last if all(h["status"] == status for h in last.values()) else None

        try:
            return wait_until(check, timeout=timeout, interval=0.2, what=f"health {status!r} on every worker")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last answers: {last}") from None

    # ---- users, database, Redis, log ---------------------------------------------------------------
    def new_user(self, prefix: str = "user") -> tuple[str, str]:
        """(email, session cookie) of a new local account."""
        email = f"{unique(prefix)}@example.com"
        return email, sign_in(self.base, email, PASSWORD, name=prefix.title())

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)

    def exchanges(self, conversation_id: str) -> list[tuple[str, str, str]]:
        """(role, content, status) of a conversation's messages, oldest first (opened with the app's keys)."""
        key_file = self.db_path.parent / "data" / "encryption.key"
        with self._db() as db:
            rows = db.execute(
                "SELECT role, user_id, content, status FROM messages WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            ).fetchall()
            return [(role, open_value(db, key_file, uid, "messages.content", text), st) for role, uid, text, st in rows]

    def live_answer(self, email: str) -> tuple[str, int] | None:
        """(conversation id, message id) of the user's answer being generated now, if any."""
        with self._db() as db:
            row = db.execute(
                "SELECT m.conversation_id, m.id FROM messages m JOIN users u ON u.id = m.user_id "
                "WHERE u.email = ? AND m.role = 'assistant' AND m.status = 'streaming' ORDER BY m.id DESC LIMIT 1",
                (email,),
            ).fetchone()
        return (row[0], row[1]) if row else None

    def redis_keys(self, pattern: str) -> list[bytes]:
        """Keys in the test Redis matching a pattern."""
        with redis.Redis(host="127.0.0.1", port=self.redis.port, socket_timeout=5) as client:
            return list(client.scan_iter(match=pattern, count=1000))

    def redis_get(self, key: str) -> bytes | None:
        """A value in the test Redis."""
        with redis.Redis(host="127.0.0.1", port=self.redis.port, socket_timeout=5) as client:
            return client.get(key)

    def log(self, since: int = 0) -> str:
        """The app's log (all workers), from byte offset `since`."""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def log_size(self) -> int:
        """Where the log ends now."""
        return self.log_path.stat().st_size


# --------------------------------------------------------------------------- tabs


def chat_var(tab: Tab, name: str) -> list[Any]:
    """Every value a ChatState var took in the tab's deltas, in order."""
    return [d[CHAT][f"{name}_rx_state_"] for d in tab.deltas if f"{name}_rx_state_" in d.get(CHAT, {})]


def conversation_of(tab: Tab) -> str:
    """The conversation the tab shows now."""
    return next((c for c in reversed(chat_var(tab, "conversation_id")) if c), "")


def draft_errors(tab: Tab) -> list[str]:
    """Errors the tab was shown under its composer."""
    return [e for e in chat_var(tab, "draft_error") if e]


def hydrated(tab: Tab) -> bool:
    """Whether the page's on_load ran (the user is shown) and hydration finished."""
    shown = any(d.get(AUTH, {}).get("user_email_rx_state_") for d in tab.deltas)
    return shown and any(d.get(STATE, {}).get("is_hydrated_rx_state_") is True for d in tab.deltas)


async def open_tab(cluster: Cluster, cookie: str, path: str = "/", timeout: float = 20.0) -> Tab:
    """Connect a headless tab and wait until its page is loaded."""
    tab = Tab(cluster.base, cookie)
    await asyncio.wait_for(tab.open(path), timeout)
    await until(lambda: hydrated(tab), timeout, what=f"{path} to load in a tab")
    return tab


async def close_all(tabs: list[Tab]) -> None:
    """Close tabs (a closed or broken socket is fine)."""
    for tab in tabs:
        with contextlib.suppress(Exception):
            await tab.close()


async def tabs_on_every_worker(
    cluster: Cluster, cookie_for: Callable[[int], Awaitable[str] | str], attempts: int = 40
) -> dict[int, Tab]:
    """One loaded tab per worker (new connections until each worker serves one; extras are closed).

    `cookie_for(i)` gives the session cookie of the i-th tab opened.
    """
    found: dict[int, Tab] = {}
    for i in range(attempts):
        cookie = cookie_for(i)
        if asyncio.iscoroutine(cookie):
            cookie = await cookie
        tab = await open_tab(cluster, str(cookie))
        pid = cluster.worker_of(tab)
        if pid in found:
            await tab.close()
        else:
            found[pid] = tab
        if len(found) == WORKERS:
            return found
    await close_all(list(found.values()))
    raise AssertionError(f"{attempts} connections reached only {len(found)} of {WORKERS} workers")


async def chat(tab: Tab, text: str, timeout: float = 30.0) -> str:
    """Send a message and wait for the whole answer; returns what the tab received."""
    await tab.send(text)
    done = await tab.wait_done(timeout)
    assert done, f"no end of answer after {timeout} s for {text!r}; received {tab.text()!r}"
    assert not draft_errors(tab)[-1:], f"the tab shows an error for {text!r}: {draft_errors(tab)[-1]}"
    return tab.text()
