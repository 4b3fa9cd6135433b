"""Signing in with an OpenID Connect provider, end to end over HTTP against a real provider.

The "browser" is an httpx client with a cookie jar: it follows the redirects by hand, so each test
can see and tamper with every hop (our /auth/login -> the provider's form -> our /auth/callback).
Every refused sign-in must land on /login?error=<code> without a session cookie and without
creating an account.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from rubin_app.services.sessions import COOKIE_NAME
from tests.fakes.oidc_provider import OIDCProvider, run_oidc_provider

from .conftest import LiveApp, login_error, session_cookie


def provider_config(provider_id: str, issuer: str) -> dict[str, str]:
    """One AUTH_PROVIDERS entry."""
    return {"id": provider_id, "issuer": issuer, "client_id": "rubin", "client_secret": "s3cret-value"}


@pytest.fixture
def app(start_app, oidc_provider: OIDCProvider, expired_oidc_provider: OIDCProvider, closed_port: int) -> LiveApp:
    """The app with a working provider, one issuing expired ID tokens and one that is down; local accounts on."""
    return start_app(
        auth_providers=[
            provider_config("mock", oidc_provider.issuer),
            provider_config("expired", expired_oidc_provider.issuer),
            provider_config("down", f"http://127.0.0.1:{closed_port}"),
        ],
        local_login="true",
    )


def new_subject(provider: OIDCProvider, **claims: object) -> str:
    """A subject the provider knows, by default with a verified email."""
    sub = f"sub-{uuid.uuid4().hex[:12]}"
    provider.set_user(sub, claims or {"email": f"{sub}@example.com", "email_verified": True})
    return sub


def begin(client: httpx.Client, provider: str = "mock", **params: str) -> str:
    """Click "Sign in with <provider>": the provider's authorization URL we are sent to."""
    response = client.get(f"/auth/login/{provider}", params=params)
    assert response.status_code == 302, (response.status_code, response.headers.get("location"))
    return response.headers["location"]


def callback_url(app: LiveApp, provider_answer: httpx.Response) -> str:
    """Where the provider sends the browser back (it must be our callback)."""
    assert provider_answer.status_code == 302, provider_answer.text[:500]
    location = provider_answer.headers["location"]
    assert location.startswith(f"{app.url}/auth/callback/"), location
    return location


def sign_in(app: LiveApp, client: httpx.Client, provider: OIDCProvider, sub: str, **params: str) -> httpx.Response:
    """The whole flow for `sub`; returns our callback's answer."""
    authorize = begin(client, **params)
    return client.get(callback_url(app, provider.login(client, authorize, sub)))


def assert_refused(app: LiveApp, client: httpx.Client, response: httpx.Response, code: str, users: int) -> None:
    """Back on the login page with `code`, no session cookie, no account created."""
    assert login_error(response)["error"] == [code]
    assert session_cookie(response) is None
    assert COOKIE_NAME not in client.cookies
    assert app.user_count() == users


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **changes})))


# --------------------------------------------------------------------------- the happy path


def test_sign_in_creates_the_account_and_a_session(app: LiveApp, oidc_provider: OIDCProvider) -> None:
    """A new user signs in with the provider, lands on the chat and can download their data."""
    client = app.client()
    authorize = begin(client)
    parts = urlsplit(authorize)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == oidc_provider.authorize_url
    assert query["client_id"] == "rubin"
    assert query["redirect_uri"] == f"{app.url}/auth/callback/mock"
    assert set(query["scope"].split()) == {"openid", "email", "profile"}
    assert len(query["state"]) >= 20 and len(query["nonce"]) >= 16
    assert query["code_challenge_method"] == "S256"
    assert len(base64.urlsafe_b64decode(query["code_challenge"] + "=")) == hashlib.sha256().digest_size

    sub = new_subject(oidc_provider, email="Anna@Example.com", email_verified=True, name="Анна Петрова 🌷")
    response = client.get(callback_url(app, oidc_provider.login(client, authorize, sub)))
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = session_cookie(response)
    assert cookie is not None and "httponly" in cookie and cookie["samesite"].lower() == "lax"

    exported = client.get("/api/account/export")
    assert exported.status_code == 200
    user = exported.json()["user"]
    assert (user["email"], user["display_name"], user["provider"]) == ("anna@example.com", "Анна Петрова 🌷", "mock")
    assert app.query("SELECT external_id, role FROM users") == [(f"mock:{sub}", "admin")]

    # Signing in again (another browser) finds the same account.
    again = sign_in(app, app.client(), oidc_provider, sub)
    assert again.status_code == 303 and session_cookie(again) is not None
    assert app.user_count() == 1


@pytest.mark.parametrize(
    ("next_path", "landing"),
    [
        ("/chat/42?tab=1", "/chat/42?tab=1"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/auth/logout", "/"),
    ],
)
def test_return_path_stays_on_this_site(
    app: LiveApp, oidc_provider: OIDCProvider, next_path: str, landing: str
) -> None:
    """After signing in the user returns where they were, never to another site (open redirect)."""
    response = sign_in(app, app.client(), oidc_provider, new_subject(oidc_provider), next=next_path)
    assert response.status_code == 303
    assert response.headers["location"] == landing
    assert session_cookie(response) is not None


# --------------------------------------------------------------------------- refused sign-ins


def test_tampered_state_is_refused(app: LiveApp, oidc_provider: OIDCProvider) -> None:
    """A callback whose state was changed does not sign anyone in."""
    client = app.client()
    back = callback_url(app, oidc_provider.login(client, begin(client), new_subject(oidc_provider)))
    state = parse_qs(urlsplit(back).query)["state"][0]
    tampered = with_query(back, state=("y" if state[0] == "x" else "x") + state[1:])  # never the same state
    assert_refused(app, client, client.get(tampered), "login_state", users=0)


def test_callback_opened_in_another_browser_is_refused(app: LiveApp, oidc_provider: OIDCProvider) -> None:
    """Login CSRF: an attacker's callback URL opened by a victim does not sign the victim in as the attacker."""
    attacker = app.client()
    back = callback_url(app, oidc_provider.login(attacker, begin(attacker), new_subject(oidc_provider)))
    victim = app.client()
    assert_refused(app, victim, victim.get(back), "login_state", users=0)


def test_replayed_callback_is_refused(app: LiveApp, oidc_provider: OIDCProvider) -> None:
    """A callback URL works once: replaying it (even with the old flow cookie) opens no second session."""
    client = app.client()
    authorize = begin(client)
    flow_cookie = client.cookies.get("rubin_flow")
    assert flow_cookie
    back = callback_url(app, oidc_provider.login(client, authorize, new_subject(oidc_provider)))
    first = client.get(back)
    assert first.status_code == 303 and session_cookie(first) is not None
    client.cookies.delete(COOKIE_NAME)

    # Same browser: the flow cookie was consumed.
    assert_refused(app, client, client.get(back), "login_state", users=1)

    # Someone who kept the flow cookie: the provider refuses the used code.
    thief = app.client()
    thief.cookies.set("rubin_flow", flow_cookie, domain="127.0.0.1", path="/auth")
    assert_refused(app, thief, thief.get(back), "login_code", users=1)


def test_id_token_with_another_nonce_is_refused(app: LiveApp, oidc_provider: OIDCProvider) -> None:
    """An ID token minted for another request (its nonce differs) is not accepted."""
    client = app.client()
    authorize = with_query(begin(client), nonce="a-nonce-this-browser-never-sent")
    back = callback_url(app, oidc_provider.login(client, authorize, new_subject(oidc_provider)))
    assert_refused(app, client, client.get(back), "login_token", users=0)


def test_expired_id_token_is_refused(app: LiveApp, expired_oidc_provider: OIDCProvider) -> None:
    """An ID token that has already expired is not accepted."""
    client = app.client()
    authorize = begin(client, "expired")
    back = callback_url(app, expired_oidc_provider.login(client, authorize, new_subject(expired_oidc_provider)))
    assert_refused(app, client, client.get(back), "login_token", users=0)


def test_provider_down_at_the_start(app: LiveApp) -> None:
    """When the provider cannot be reached, the login page says so instead of an error page."""
    client = app.client()
    assert_refused(app, client, client.get("/auth/login/down"), "provider_unavailable", users=0)


def test_provider_down_at_the_callback(start_app) -> None:
    """The provider goes away between its login form and the code exchange: a clear error, no session."""
    with run_oidc_provider() as provider:
        app = start_app(auth_providers=[provider_config("mock", provider.issuer)])
        client = app.client()
        back = callback_url(app, provider.login(client, begin(client), new_subject(provider)))
    assert_refused(app, client, client.get(back), "provider_unavailable", users=0)


def test_provider_that_requires_a_nonce(start_app) -> None:
    """Strict providers refuse authorization requests without a nonce; ours always carries one."""
    with run_oidc_provider(require_nonce=True) as provider:
        app = start_app(auth_providers=[provider_config("strict", provider.issuer)])
        client = app.client()
        authorize = begin(client, "strict")
        refused = provider.login(client, with_query(authorize, nonce=""), new_subject(provider))
        assert refused.status_code != 302 or "error=" in refused.headers["location"]  # the check is real
        response = client.get(callback_url(app, provider.login(client, authorize, new_subject(provider))))
    assert response.status_code == 303 and session_cookie(response) is not None


@pytest.mark.parametrize("query", ["", "?state=abc", "?code=abc"])
def test_callback_without_parameters(app: LiveApp, query: str) -> None:
    """Opening the callback URL by hand (or a truncated one) says the sign-in did not finish."""
    client = app.client()
    begin(client)
    assert_refused(app, client, client.get(f"/auth/callback/mock{query}"), "login_incomplete", users=0)


def test_user_denies_on_the_provider(app: LiveApp, oidc_provider: OIDCProvider) -> None:
    """Pressing "Deny" at the provider brings the user back with a clear message."""
    client = app.client()
    back = callback_url(app, oidc_provider.deny(client, begin(client)))
    assert parse_qs(urlsplit(back).query)["error"] == ["access_denied"]
    assert_refused(app, client, client.get(back), "login_denied", users=0)


@pytest.mark.parametrize(
    "claims",
    [{"name": "No Mail"}, {"email": "unverified@example.com", "email_verified": False, "name": "Unverified"}],
    ids=["no-email", "unverified-email"],
)
def test_provider_without_a_usable_email(app: LiveApp, oidc_provider: OIDCProvider, claims: dict) -> None:
    """An identity without a (verified) email cannot open an account."""
    sub = new_subject(oidc_provider, **claims)
    client = app.client()
    assert_refused(app, client, sign_in(app, client, oidc_provider, sub), "no_email", users=0)


def test_email_of_another_account_is_refused(app: LiveApp, oidc_provider: OIDCProvider) -> None:
    """A provider identity cannot take over a local account that has the same email."""
    assert app.sign_up(app.client(), "owner@example.com").status_code == 303
    sub = new_subject(oidc_provider, email="owner@example.com", email_verified=True)
    client = app.client()
    assert_refused(app, client, sign_in(app, client, oidc_provider, sub), "email_taken", users=1)
    assert app.query("SELECT provider FROM users") == [("local",)]


@pytest.mark.parametrize("path", ["/auth/login/nope", "/auth/callback/nope?code=a&state=b"])
def test_unknown_provider(app: LiveApp, path: str) -> None:
    """A link to a provider that is not configured goes back to the login page."""
    client = app.client()
    assert_refused(app, client, client.get(path), "unknown_provider", users=0)


def test_refusals_are_audited(app: LiveApp, oidc_provider: OIDCProvider) -> None:
    """Admins can see failed provider sign-ins in the audit trail."""
    client = app.client()
    back = callback_url(app, oidc_provider.deny(client, begin(client)))
    client.get(back)
    rows = app.query("SELECT action, ok, detail FROM audit_events")
    assert ("provider_failed", False, "mock: login_denied") in [(a, bool(o), d) for a, o, d in rows]
    assert json.dumps(rows).count("s3cret") == 0


# --------------------------------------------------------------------------- re-authentication (issue #13)


def test_an_admin_signing_in_again_with_prompt_login_is_re_authenticated(
    app: LiveApp, oidc_provider: OIDCProvider
) -> None:
    """The admin page's "Sign in again" asks the provider for a fresh sign-in; only that session counts as
    re-authenticated (for deleting users and changing roles within 5 minutes), and the audit log says so."""
    client = app.client()
    sub = new_subject(oidc_provider)
    first = sign_in(app, client, oidc_provider, sub)
    assert first.status_code == 303 and session_cookie(first) is not None
    assert app.query("SELECT reauth_at FROM auth_sessions") == [(None,)]  # a plain sign-in is not a confirmation

    authorize = begin(client, reauth="1", next="/admin")
    assert parse_qs(urlsplit(authorize).query)["prompt"] == ["login"]
    again = client.get(callback_url(app, oidc_provider.login(client, authorize, sub)))
    assert again.status_code == 303 and again.headers["location"] == "/admin"
    rows = app.query("SELECT id, reauth_at FROM auth_sessions ORDER BY id")
    assert len(rows) == 2 and rows[0][1] is None and rows[1][1] is not None
    audited = app.query("SELECT ok, detail FROM audit_events WHERE action = 'reauthenticated'")
    assert [(bool(ok), detail) for ok, detail in audited] == [(True, "provider mock")]
