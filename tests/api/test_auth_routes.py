"""Email + password sign-in over HTTP: the forms' routes, the session cookie, sign-out and the data export.

The app runs on a real loopback server; the "browsers" are httpx clients with their own cookie jars.
"""

from __future__ import annotations

from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import create_engine, pool
from sqlmodel import Session

from rubin_app.models import Conversation, Message, MessageRole
from rubin_app.services.sessions import COOKIE_NAME

from .conftest import PASSWORD, LiveApp, login_error, session_cookie


@pytest.fixture
def app(start_app) -> LiveApp:
    """The app with local accounts only (the default without providers)."""
    return start_app()


def export(client: httpx.Client, token: str | None = None) -> httpx.Response:
    """GET the data export with the client's cookies, or (a replayed copy) only the given session token."""
    if token:
        url = str(client.base_url.join("/api/account/export"))
        return httpx.get(url, headers={"Cookie": f"{COOKIE_NAME}={token}"}, timeout=15)
    return client.get("/api/account/export")


def add_chat(app: LiveApp, email: str, title: str, text: str) -> None:
    """A conversation with one message, owned by the account `email` (written straight to the database)."""
    engine = create_engine(app.db_url, poolclass=pool.NullPool)
    try:
        with Session(engine) as session:
            (user_id,) = app.query("SELECT id FROM users WHERE email = :e", e=email)[0]
            conversation = Conversation(user_id=user_id, title=title, model="m")
            session.add(conversation)
            session.flush()
            session.add(Message(conversation_id=conversation.id, user_id=user_id, role=MessageRole.user, content=text))
            session.commit()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- sign-up and the cookie


def test_sign_up_signs_in_with_a_safe_cookie(app: LiveApp) -> None:
    """Creating an account lands on the chat with an HttpOnly, SameSite=Lax cookie (not Secure over http)."""
    client = app.client()
    response = app.sign_up(client, "First@Example.com", name="Ада 🚀")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = session_cookie(response)
    assert cookie is not None
    assert "httponly" in cookie and cookie["samesite"].lower() == "lax" and cookie["path"] == "/"
    assert "secure" not in cookie
    assert int(cookie["max-age"]) == 720 * 3600
    # Only the hash of the token is stored.
    assert app.query("SELECT count(*) FROM auth_sessions WHERE token_hash = :t", t=cookie["value"]) == [(0,)]

    exported = export(client)
    assert exported.status_code == 200
    assert exported.json()["user"]["display_name"] == "Ада 🚀"
    assert app.query("SELECT email, role FROM users") == [("first@example.com", "admin")]


def test_secure_cookie_when_configured(start_app) -> None:
    """With COOKIE_SECURE=true (TLS ends at a proxy) the cookie is Secure even though this hop is http."""
    app = start_app(cookie_secure="true", session_lifetime_hours=2)
    cookie = session_cookie(app.sign_up(app.client(), "admin@example.com"))
    assert cookie is not None and "secure" in cookie and int(cookie["max-age"]) == 7200


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"email": "not-an-email"}, "bad_email"),
        ({"email": "a" * 300 + "@example.com"}, "bad_email"),
        ({"email": ""}, "bad_email"),
        ({"password": "Qx7!zk", "password2": "Qx7!zk"}, "password_too_short"),
        ({"password": "password1234", "password2": "password1234"}, "password_common"),
        ({"password2": "something else entirely"}, "password_mismatch"),
        ({"name": "bell\x07"}, "bad_name"),
    ],
)
def test_sign_up_errors_return_to_the_form(app: LiveApp, fields: dict[str, str], code: str) -> None:
    """A refused sign-up goes back to the form with a reason and the fields, never the password."""
    client = app.client()
    data = {"email": "new@example.com", "password": PASSWORD, "password2": PASSWORD, "name": "New", **fields}
    response = client.post("/auth/local/signup", data=data, headers={"Origin": app.origin})
    query = login_error(response)
    assert query["error"] == [code]
    assert query["mode"] == ["signup"]
    assert data["password"] not in unquote(response.headers["location"])
    assert session_cookie(response) is None
    assert app.user_count() == 0


def test_duplicate_email_is_refused(app: LiveApp) -> None:
    """The same email (in any case) cannot open a second account."""
    assert app.sign_up(app.client(), "dup@example.com").status_code == 303
    response = app.sign_up(app.client(), "DUP@example.com", password="another good phrase")
    assert login_error(response)["error"] == ["signup_not_created"]  # neutral (no enumeration); the owner is told
    assert app.user_count() == 1


# --------------------------------------------------------------------------- sign-in


def test_sign_in_and_wrong_password(app: LiveApp) -> None:
    """The right password signs in; a wrong one says only "wrong email or password" and keeps the email."""
    app.sign_up(app.client(), "user@example.com")
    client = app.client()
    wrong = app.log_in(client, "user@example.com", "not the password")
    query = login_error(wrong)
    assert query["error"] == ["bad_credentials"] and query["email"] == ["user@example.com"]
    assert "not the password" not in unquote(wrong.headers["location"])
    assert session_cookie(wrong) is None
    unknown = app.log_in(client, "nobody@example.com", "not the password")
    assert login_error(unknown)["error"] == ["bad_credentials"]  # the same answer: no account discovery

    right = app.log_in(client, "USER@example.com", next="/chat/7")
    assert right.status_code == 303 and right.headers["location"] == "/chat/7"
    assert export(client).json()["user"]["email"] == "user@example.com"


@pytest.mark.parametrize("next_path", ["//evil.example", "https://evil.example/x", "/\\evil.example"])
def test_sign_in_never_redirects_off_site(app: LiveApp, next_path: str) -> None:
    """A crafted login link cannot send the user to another site after sign-in."""
    app.sign_up(app.client(), "user@example.com")
    response = app.log_in(app.client(), "user@example.com", next=next_path)
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_lockout_over_http(start_app) -> None:
    """After too many wrong passwords even the right one is refused for a while, and the page says how long."""
    app = start_app(login_max_failures=2, login_lockout_minutes=10)
    app.sign_up(app.client(), "user@example.com")
    client = app.client()
    for _ in range(2):
        assert login_error(app.log_in(client, "user@example.com", "wrong password here"))["error"] == [
            "bad_credentials"
        ]
    locked = app.log_in(client, "user@example.com")
    query = login_error(locked)
    assert query["error"] == ["locked_out"] and query["minutes"] == ["10"]
    assert session_cookie(locked) is None


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1"])
@pytest.mark.parametrize("path", ["/auth/local/login", "/auth/local/signup", "/auth/logout", "/auth/logout-all"])
def test_cross_origin_posts_are_refused(app: LiveApp, origin: str, path: str) -> None:
    """Another site cannot post our forms (login CSRF, forced sign-out)."""
    owner = app.client()
    app.sign_up(owner, "owner@example.com")
    data = {"email": "x@example.com", "password": PASSWORD, "password2": PASSWORD}
    response = owner.post(path, data=data, headers={"Origin": origin})
    assert login_error(response)["error"] == ["bad_origin"]
    assert session_cookie(response) is None
    assert app.user_count() == 1
    assert export(owner).status_code == 200  # still signed in


# --------------------------------------------------------------------------- sign-out


def test_logout_ends_the_session_for_good(app: LiveApp) -> None:
    """After signing out, a copy of the old cookie no longer opens the account."""
    client = app.client()
    token = session_cookie(app.sign_up(client, "user@example.com"))["value"]  # type: ignore[index]
    assert export(client, token).status_code == 200  # also warms the server's session cache

    response = client.post("/auth/logout", headers={"Origin": app.origin})
    assert response.status_code == 303 and response.headers["location"] == "/login?info=signed_out"
    cleared = session_cookie(response)
    assert cleared is not None and (cleared["value"] in ('""', "") or cleared.get("max-age") == "0")
    assert COOKIE_NAME not in client.cookies

    replayed = export(client, token)
    assert replayed.status_code == 401 and replayed.json() == {"error": "not_signed_in"}
    assert app.query("SELECT action FROM audit_events WHERE action = 'sign_out'") == [("sign_out",)]


def test_logout_all_ends_every_device(app: LiveApp) -> None:
    """ "Sign out everywhere" on the laptop also signs the phone out; other people stay signed in."""
    laptop, phone, other = app.client(), app.client(), app.client()
    app.sign_up(laptop, "user@example.com")
    assert app.log_in(phone, "user@example.com").status_code == 303
    app.sign_up(other, "other@example.com")
    assert export(phone).status_code == 200

    response = laptop.post("/auth/logout-all", headers={"Origin": app.origin})
    assert response.status_code == 303 and response.headers["location"] == "/login?info=signed_out_all"
    assert export(phone).status_code == 401
    assert export(laptop).status_code == 401
    assert export(other).status_code == 200


def test_signed_out_page_drops_only_dead_cookies(app: LiveApp) -> None:
    """The signed-out page clears a dead cookie but sends a still signed-in user back to the chat."""
    client = app.client()
    token = session_cookie(app.sign_up(client, "user@example.com"))["value"]  # type: ignore[index]
    assert client.get("/auth/signed-out").headers["location"] == "/"
    client.post("/auth/logout-all", headers={"Origin": app.origin})
    stale = httpx.get(f"{app.url}/auth/signed-out", headers={"Cookie": f"{COOKIE_NAME}={token}"})
    assert stale.status_code == 303 and stale.headers["location"].startswith("/login?info=")
    assert session_cookie(stale) is not None


# --------------------------------------------------------------------------- export


def test_export_holds_only_the_users_own_data(app: LiveApp) -> None:
    """The download is a JSON attachment with the user's chats and nobody else's."""
    alice, bob = app.client(), app.client()
    app.sign_up(alice, "alice@example.com")
    app.sign_up(bob, "bob@example.com")
    add_chat(app, "alice@example.com", "Alice's plans", "alice secret")
    add_chat(app, "bob@example.com", "Bob's plans", "bob secret")

    response = export(alice)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"].startswith('attachment; filename="rubin-export-')
    assert response.headers["cache-control"] == "no-store"
    data = response.json()
    assert data["user"]["email"] == "alice@example.com"
    assert [c["title"] for c in data["conversations"]] == ["Alice's plans"]
    assert [m["content"] for m in data["conversations"][0]["messages"]] == ["alice secret"]
    assert "bob" not in response.text.lower()
    assert "password" not in response.text.lower() and "argon2" not in response.text


def test_export_needs_a_session(app: LiveApp) -> None:
    """Without a (valid) cookie the export answers 401."""
    assert export(app.client()).status_code == 401
    assert export(app.client(), "x" * 43).status_code == 401
