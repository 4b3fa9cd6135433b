"""The second sign-in step over HTTP: a correct password opens no session, the pending step lives in an
HttpOnly cookie bound to /auth, codes are posted from the site only, a wrong code keeps the step for a retry,
a missing or expired step sends the browser back to the password."""

from __future__ import annotations

import time

import httpx
import pyotp
import pytest

from rubin_app.accounts import totp
from rubin_app.vault.sealing import UserCipher
from rubin_app.vault.service import get_vault

from .conftest import LiveApp, login_error, session_cookie
from .helpers import execute, new_user

KEY = "e" * 64


@pytest.fixture
def app(start_app) -> LiveApp:
    """The app with local accounts only, and a known SECRET_KEY (the test writes an encrypted secret)."""
    return start_app(secret_key=KEY)


def sealed_secret(app: LiveApp, user_id: int, secret: str) -> str:
    """The secret as the account page stores it: sealed with the user's data key (the app's vault)."""
    [(key_id, kek_id, wrapped)] = app.query("SELECT id, kek_id, wrapped FROM user_keys WHERE user_id = :u", u=user_id)
    data_key = get_vault().keyring.unwrap(kek_id, wrapped, f"user:{user_id}")
    return UserCipher(user_id, {key_id: data_key}).seal(totp.SEALED_COLUMN, secret)


def with_two_factor(app: LiveApp, email: str) -> tuple[str, str]:
    """Sign up and turn two-factor on, as the account page stores it; the secret and one recovery code."""
    user_id = new_user(app, email)
    secret, recovery = totp.new_secret(), totp.new_recovery_codes(1)[0]
    execute(
        app,
        "INSERT INTO totp_secrets (user_id, secret, created_at, enabled_at) VALUES (:u, :s, :now, :now)",
        u=user_id, s=sealed_secret(app, user_id, secret), now="2026-01-01 00:00:00",
    )  # fmt: skip
    execute(
        app,
        "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (:u, :h, :now)",
        u=user_id, h=totp.hash_recovery_code(KEY, user_id, recovery), now="2026-01-01 00:00:00",
    )  # fmt: skip
    return secret, recovery


def pending_cookie(response: httpx.Response) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith("rubin_2fa=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0]


def post_code(app: LiveApp, client: httpx.Client, code: str, origin: str | None = None) -> httpx.Response:
    return client.post("/auth/local/code", data={"code": code}, headers={"Origin": origin or app.origin})


def test_the_password_step_opens_no_session_and_binds_the_code_step(app: LiveApp) -> None:
    secret, _ = with_two_factor(app, "ann@example.com")
    sessions_before = app.query("SELECT count(*) FROM auth_sessions")[0][0]  # the sign-up's
    browser = app.client()
    response = app.log_in(browser, "ann@example.com", next="/c/abc")
    assert login_error(response) == {"step": ["code"], "next": ["/c/abc"]}
    assert session_cookie(response) is None
    cookie = pending_cookie(response).lower()
    assert "httponly" in cookie and "path=/auth" in cookie and "samesite=lax" in cookie and "max-age=300" in cookie
    assert app.query("SELECT count(*) FROM auth_sessions")[0][0] == sessions_before

    # Another browser (without the pending cookie) cannot finish it, even with a right code.
    stranger = app.client()
    assert login_error(post_code(app, stranger, pyotp.TOTP(secret).now()))["error"] == ["code_expired"]
    # A code posted from another site is refused before anything is checked.
    assert login_error(post_code(app, browser, "123456", origin="https://evil.example"))["error"] == ["bad_origin"]

    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    again = post_code(app, browser, wrong)
    assert login_error(again) == {"error": ["wrong_code"], "step": ["code"]}
    assert session_cookie(again) is None
    done = post_code(app, browser, pyotp.TOTP(secret).at(time.time() + 30))
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert session_cookie(done) is not None
    assert 'rubin_2fa=""' in pending_cookie(done)  # the step is over: its cookie is dropped
    assert app.query("SELECT count(*) FROM auth_sessions")[0][0] == sessions_before + 1


def test_a_recovery_code_signs_in_once(app: LiveApp) -> None:
    _, recovery = with_two_factor(app, "bob@example.com")
    first = app.client()
    app.log_in(first, "bob@example.com")
    assert session_cookie(post_code(app, first, recovery.replace("-", " "))) is not None
    second = app.client()
    app.log_in(second, "bob@example.com")
    assert login_error(post_code(app, second, recovery)) == {"error": ["recovery_code_used"], "step": ["code"]}
    actions = [a for (a,) in app.query("SELECT action FROM audit_events ORDER BY id")]
    assert actions.count("recovery_code_used") == 1 and actions.count("sign_in") == 1  # the sign-up's is "sign_up"
