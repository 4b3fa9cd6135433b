"""The sign-in lockout over real HTTP with two server processes on one PostgreSQL database (issue 11, item 2).

30 wrong passwords and then the right one, all in flight at once and split across the two processes:
at most LOGIN_MAX_FAILURES passwords are checked and the right one is refused.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, pool, text

from rubin_app import config as config_module
from rubin_app.services.migrate import upgrade_head
from rubin_app.services.sessions import COOKIE_NAME
from tests.conftest import free_port

from .conftest import PASSWORD, login_error

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "victim@example.com"
MAX_FAILURES = 5  # LOGIN_MAX_FAILURES's default: the servers run with default lockout settings


def _count(db_url: str, sql: str) -> int:
    engine = create_engine(db_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def _serve(db_url: str, data_dir: Path, secret: str) -> tuple[subprocess.Popen[bytes], str]:
    """One server process (the /auth and /api routes under uvicorn) on a free loopback port."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in config_module.Settings.model_fields}
    env.update(
        DATABASE_URL=db_url, DATA_DIR=str(data_dir), SECRET_KEY=secret, LOCALAI_URL="http://127.0.0.1:9",
        PYTHONPATH=str(ROOT),
    )  # fmt: skip
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "rubin_app.api.routes:build_api", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(cmd, env=env, cwd=data_dir), f"http://127.0.0.1:{port}"


def _wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server process exited"
        try:
            if httpx.get(f"{url}/api/version", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server at {url} did not start")


@pytest.fixture
def two_servers(empty_database: Callable[[str], str], tmp_path: Path) -> Iterator[tuple[list[str], str]]:
    """Two server processes sharing one migrated PostgreSQL database; yields their URLs and the database URL."""
    db_url = empty_database("postgresql")
    upgrade_head(db_url)
    secret = secrets.token_hex(32)
    servers = []
    for i in range(2):
        data_dir = tmp_path / f"worker{i}"
        data_dir.mkdir()
        servers.append(_serve(db_url, data_dir, secret))
    try:
        for process, url in servers:
            _wait_up(url, process)
        yield [url for _, url in servers], db_url
    finally:
        for process, _ in servers:
            process.terminate()
        for process, _ in servers:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _post(url: str, path: str, **data: str) -> httpx.Response:
    """A form POST from a fresh browser of the site (no cookies)."""
    with httpx.Client(base_url=url, follow_redirects=False, timeout=60) as client:
        return client.post(path, data=data, headers={"Origin": url})


def test_parallel_sign_ins_on_two_workers_check_at_most_the_limit(two_servers: tuple[list[str], str]) -> None:
    """31 parallel POSTs across two processes: the right password is refused and at most 5 were checked."""
    (first, second), db_url = two_servers
    signed_up = _post(first, "/auth/local/signup", email=EMAIL, password=PASSWORD, password2=PASSWORD)
    assert signed_up.status_code == 303 and COOKIE_NAME in signed_up.cookies

    def right_one() -> httpx.Response:
        deadline = time.monotonic() + 0.3  # the code under test may not reserve: then just go
        while time.monotonic() < deadline:
            try:
                if _count(db_url, "SELECT count(*) FROM login_attempts WHERE kind = 'sign_in'") >= MAX_FAILURES:
                    break
            except Exception:  # no such table before the fix
                pass
            time.sleep(0.01)
        return _post(second, "/auth/local/login", email=EMAIL, password=PASSWORD)

    with ThreadPoolExecutor(max_workers=31) as executor:
        wrong = [
            executor.submit(_post, (first, second)[i % 2], "/auth/local/login", email=EMAIL, password=f"guess {i}")
            for i in range(30)
        ]
        right = executor.submit(right_one).result()
        answers = [login_error(f.result())["error"][0] for f in wrong]

    assert COOKIE_NAME not in right.cookies
    assert login_error(right)["error"][0] in ("locked_out", "slow_down")
    assert answers.count("bad_credentials") <= MAX_FAILURES
    assert set(answers) <= {"bad_credentials", "locked_out", "slow_down"}
    checked = _count(db_url, "SELECT count(*) FROM audit_events WHERE action = 'sign_in_failed'")
    assert checked <= MAX_FAILURES  # each checked password wrote one failure
    settled = "SELECT count(*) FROM login_attempts WHERE kind = 'sign_in' AND status IN ('failed', 'ok')"
    assert _count(db_url, settled) == checked


def _set_cookie(response: httpx.Response, name: str) -> str:
    """The raw Set-Cookie header for `name` (asserting there is one)."""
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0]


def test_a_known_browser_signs_in_while_its_shared_ip_is_throttled(start_app) -> None:
    """Behind one NAT a stranger fails on the owner's account and others: the owner's browser still gets in."""
    app = start_app(login_max_failures=2, login_ip_max_failures=3)
    owner = app.client()
    cookie = _set_cookie(app.sign_up(owner, EMAIL), "rubin_device").lower()
    assert "httponly" in cookie and "path=/auth" in cookie and "samesite=lax" in cookie
    stranger = app.client()
    for i in range(2):
        assert login_error(app.log_in(stranger, EMAIL, f"guess {i}"))["error"] == ["bad_credentials"]
    assert login_error(app.log_in(stranger, "other@example.com", "guess"))["error"] == ["bad_credentials"]
    assert login_error(app.log_in(stranger, EMAIL))["error"] == ["locked_out"]  # even the right password
    assert login_error(app.log_in(app.client(), "new@example.com"))["error"] == ["slow_down"]
    signed_in = app.log_in(owner, EMAIL)  # the same IP, but a browser that signed in before
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    assert COOKIE_NAME in signed_in.cookies


def test_sign_up_with_a_taken_email_answers_neutrally(start_app) -> None:
    """The page does not say the email is taken; the owner's audit trail shows the attempt."""
    app = start_app()
    app.sign_up(app.client(), EMAIL)
    response = app.sign_up(app.client(), EMAIL.upper(), password="another good phrase")
    assert login_error(response)["error"] == ["signup_not_created"]
    assert COOKIE_NAME not in response.cookies
    assert app.query("SELECT action, email FROM audit_events WHERE action = 'sign_up_taken'") == [
        ("sign_up_taken", EMAIL)
    ]
