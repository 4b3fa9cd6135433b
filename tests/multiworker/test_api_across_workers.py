"""The APIs on three workers sharing Redis: a key revoked on one worker is refused at once by every worker
(each had it cached), and a Stop sent to another worker than the one generating stops the answer."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .helpers import WORKERS, Cluster, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _request(
    app: Cluster, method: str, path: str, key: str, body: Any = None, avoid: int = 0
) -> tuple[int, int, bytes]:
    """(worker pid, status, body) of one request on a new connection (the kernel picks the worker; a connection
    that lands on worker `avoid` is closed unused and another one made)."""
    for _ in range(100):
        conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
        conn.connect()
        pid = wait_until(lambda c=conn: app.owner(c.sock.getsockname()), timeout=5, what="the worker")
        if pid != avoid:
            break
        conn.close()
    else:
        raise AssertionError(f"every connection landed on worker {avoid}")
    try:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        return pid, response.status, response.read()
    finally:
        conn.close()


def _on_every_worker(call: Callable[[], tuple[int, int, bytes]], attempts: int = 80) -> dict[int, int]:
    """{worker pid: status} once every worker has answered `call` at least once."""
    statuses: dict[int, int] = {}
    for _ in range(attempts):
        pid, status, _body = call()
        statuses.setdefault(pid, status)
        if len(statuses) == WORKERS:
            return statuses
    raise AssertionError(f"only {len(statuses)} of {WORKERS} workers answered: {statuses}")


def _key_for(app: Cluster, email: str) -> str:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{app.db_path}", "REDIS_URL": app.redis.url}
    made = subprocess.run(
        [sys.executable, "-m", "rubin_app", "keys", "create", "--email", email, "--name", "cluster"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return made.stdout.strip()


def test_a_key_revoked_on_one_worker_is_refused_by_every_worker_at_once(app: Cluster) -> None:
    email, _ = app.new_user("revoke")
    key = _key_for(app, email)
    # Every worker resolves and caches the key.
    assert set(_on_every_worker(lambda: _request(app, "GET", "/v1/models", key)).values()) == {200}
    key_id = json.loads(_request(app, "GET", "/api/v1/keys", key)[2])[0]["id"]
    _pid, status, _ = _request(app, "DELETE", f"/api/v1/keys/{key_id}", key)
    assert status == 200
    assert set(_on_every_worker(lambda: _request(app, "GET", "/v1/models", key)).values()) == {401}


def test_a_stop_sent_to_another_worker_stops_the_answer(app: Cluster) -> None:
    email, _ = app.new_user("stopper")
    key = _key_for(app, email)
    events: list[tuple[str, dict[str, Any]]] = []
    generating: list[int] = []

    def stream() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=60)
        conn.connect()
        generating.append(wait_until(lambda: app.owner(conn.sock.getsockname()), timeout=5, what="the worker"))
        body = json.dumps({"content": "[[tokens=400]] a long answer"})
        conn.request("POST", "/api/v1/conversations/new/messages", body=body,
                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})  # fmt: skip
        response, name = conn.getresponse(), ""
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
        conn.close()

    reader = threading.Thread(target=stream)
    reader.start()
    wait_until(lambda: sum(1 for n, _ in events if n == "delta") >= 3, timeout=20, what="the answer streaming")
    cid = events[0][1]["conversation_id"]
    pid, status, body = _request(app, "POST", f"/api/v1/conversations/{cid}/stop", key, avoid=generating[0])
    assert pid != generating[0] and status == 200 and json.loads(body) == {"stopped": True}
    reader.join(timeout=20)
    name, done = events[-1]
    assert (name, done["status"], done["error"]) == ("done", "interrupted", "stopped")
