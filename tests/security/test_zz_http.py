"""Issue #11 on the HTTP routes, against the running instance: sign-in bursts, known devices, neutral
sign-up, headers, Host-header redirects, callback floods, health counters.

Named to run last: its sign-in bursts spend this address's sign-in budget (the delays would slow the
other files' sign-ins).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.security.client import sign_up
from tests.security.conftest import Target

MAX_FAILURES = 5  # LOGIN_MAX_FAILURES's default


def _login(target: Target, email: str, password: str, cookies: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(base_url=target.base, headers={"Origin": target.base}, cookies=cookies, timeout=60) as c:
        return c.post("/auth/local/login", data={"email": email, "password": password})


def test_security_headers_on_pages_api_and_404s(target: Target) -> None:
    for path in ("/", "/login", "/api/health", "/auth/signed-out", "/no-such-page", "/manifest.webmanifest"):
        headers = httpx.get(f"{target.base}{path}", timeout=30).headers
        csp = headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, (path, csp)
        assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0], (path, csp)
        assert headers.get("x-frame-options") == "DENY", path
        assert headers.get("x-content-type-options") == "nosniff", path
        assert headers.get("referrer-policy") == "same-origin", path
        assert "camera=()" in headers.get("permissions-policy", ""), path


def test_redirects_never_follow_a_forged_host(target: Target) -> None:
    redirected = 0
    for path in ("/login/", "/auth/signed-out/", "/auth/login/mock/", "/api/health/"):
        response = httpx.get(f"{target.base}{path}", headers={"Host": "evil.example"}, timeout=30)
        redirected += response.is_redirect
        assert "evil.example" not in response.headers.get("location", ""), (path, response.headers.get("location"))
    assert redirected, "none of the trailing-slash paths redirected (the check would prove nothing)"


def test_health_shows_no_cache_counters_to_strangers(target: Target) -> None:
    body = httpx.get(f"{target.base}/api/health", timeout=30).json()
    assert "cache" not in body and "hits" not in str(body)


def test_junk_provider_callbacks_end_on_the_login_page(target: Target) -> None:
    with httpx.Client(base_url=target.base, timeout=30) as client:
        answers = [client.get(f"/auth/callback/{name}") for name in ("a%00b", "x" * 40, "%E2%80%AE", "nope")]
        flood = [client.get("/auth/callback/nope").headers.get("location", "") for _ in range(30)]
    assert all(a.status_code in (302, 303, 307) and a.headers["location"].startswith("/login") for a in answers)
    assert any("login_too_many" in loc for loc in flood), "30 junk callbacks in a row were never slowed down"


def test_sign_up_with_a_taken_email_does_not_say_so(target: Target) -> None:
    owner = sign_up(target.base, "owner")
    form = {"name": "x", "email": owner.email, "password": f"pw-{uuid.uuid4().hex}", "password2": ""}
    form["password2"] = form["password"]
    with httpx.Client(base_url=target.base, headers={"Origin": target.base}, timeout=30) as client:
        response = client.post("/auth/local/signup", data=form)
    error = parse_qs(urlsplit(response.headers.get("location", "")).query).get("error", [""])[0]
    assert "rubin_session" not in response.cookies
    assert error and "taken" not in error and "exist" not in error, error


def test_a_burst_of_guesses_checks_at_most_the_limit_and_the_right_password_is_refused(target: Target) -> None:
    victim = sign_up(target.base, "burst")
    device = _login(target, victim.email, victim.password).cookies.get("rubin_device")  # the owner's own browser
    guesses = [f"wrong-{i}-{uuid.uuid4().hex[:6]}" for i in range(30)] + [victim.password]
    with ThreadPoolExecutor(len(guesses)) as pool:
        answers = list(pool.map(lambda p: _login(target, victim.email, p), guesses))
    assert "rubin_session" not in answers[-1].cookies, "the right password got in during a burst of 30 guesses"
    checked = [a for a in answers[:-1] if "bad_credentials" in a.headers.get("location", "")]
    assert len(checked) <= MAX_FAILURES, f"{len(checked)} guesses were checked (at most {MAX_FAILURES})"
    # The owner's browser, known from an earlier sign-in, still gets in: the attacker locked out only itself.
    assert device, "no known-device cookie was set at sign-in"
    own = _login(target, victim.email, victim.password, cookies={"rubin_device": device})
    assert "rubin_session" in own.cookies, own.headers.get("location")
