"""The HTTP surface under attack: CORS, security headers, forged Host redirects, forwarded headers, callbacks.

The routes run for real on loopback. Where the production stack matters (CORS, headers on the built
frontend) a second server serves Rubin's layers exactly as Reflex composes them (reflex/app.py
`App.__call__`): a Reflex stand-in with CORS and the built files, mounted into Rubin's Starlette app,
wrapped by the security headers, inside a top Starlette with CORS, every CORS layer configured with
rxconfig's `cors_allowed_origins`. uvicorn's own X-Forwarded-* handling is off (as under granian).
"""

from __future__ import annotations

import base64
import hashlib
import runpy
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from rubin_app.api.routes import STATIC_DIR, build_api
from tests.fakes.oidc_provider import OIDCProvider
from tests.loopback import free_socket, serve_in_thread

from .conftest import LiveApp, login_error, session_cookie

ROOT = Path(__file__).resolve().parents[2]
INLINE = b"window.__rubinBoot = 1;"
Serve = Callable[..., str]


def _cors(app: Starlette, origins: list[str]) -> None:
    """Reflex's `App._add_cors`, verbatim."""
    app.add_middleware(
        CORSMiddleware, allow_credentials=True, allow_methods=["*"], allow_headers=["*"], allow_origins=origins
    )


def production_stack(origins: list[str]) -> Starlette:
    """Rubin's layers the way `reflex run --env prod` composes them, with the built frontend from STATIC_DIR."""
    reflex_app = Starlette(routes=[Mount("/", app=StaticFiles(directory=STATIC_DIR, html=True))])
    _cors(reflex_app, origins)
    app = reflex_app
    for layer in build_api():
        if isinstance(layer, Starlette):
            _cors(layer, origins)
            layer.mount("", app)
            app = layer
        else:
            app = layer(app)
    top = Starlette()
    top.mount("", app)
    _cors(top, origins)
    return top


def rxconfig_origins() -> list[str]:
    """`cors_allowed_origins` of the real rxconfig.py under the current environment (as in production)."""
    config = runpy.run_path(str(ROOT / "rxconfig.py"))["config"]
    return list(config.cors_allowed_origins)


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Serve]:
    """Factory: serve an ASGI app on a loopback socket (pre-bound: `sock=`), uvicorn's proxy headers off."""
    stops: list[Callable[[], None]] = []

    def start(app, sock: socket.socket | None = None) -> str:
        url, stop = serve_in_thread(app, sock, http="h11", ws="none", proxy_headers=False)
        stops.append(stop)
        return url

    yield start
    for stop in stops:
        stop()


@pytest.fixture(autouse=True)
def no_uvicorn_forwarding(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn believes X-Forwarded-For from 127.0.0.1 by default; production (granian) does not: neither here."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")


def write_build(root: Path) -> None:
    """A tiny production build: a page with an inline script (like React Router's), and a page directory."""
    static = root / STATIC_DIR
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_bytes(b"<html><head><script>" + INLINE + b"</script></head><body></body></html>")
    (static / "assets" / "app.js").write_text("console.log(1)")
    (static / "sw.js").write_text("self.addEventListener('fetch', () => {})")
    (static / "rubin.js").write_text("window.rubin = {}")  # the page's own scripts at the root (assets/)
    (static / "login").mkdir()
    (static / "login" / "index.html").write_text("<html><body>login</body></html>")


@pytest.fixture
def prod(start_app, serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[LiveApp, str]:
    """(a plain app on one port = a foreign origin, the production stack on another = PUBLIC_URL)."""
    sock = free_socket()
    public = f"http://127.0.0.1:{sock.getsockname()[1]}"
    foreign = start_app(public_url=public, llm_retries=0)
    monkeypatch.setenv("REFLEX_ENV_MODE", "prod")
    write_build(tmp_path)
    serve(production_stack(rxconfig_origins()), sock=sock)
    return foreign, public


# --------------------------------------------------------------------------- CORS (issue 11, item 3)


def test_rxconfig_never_allows_any_origin(prod) -> None:
    foreign, public = prod
    origins = rxconfig_origins()
    assert "*" not in origins and public in origins and foreign.url not in origins


@pytest.mark.parametrize("path", ["/api/health", "/api/version", "/auth/signed-out", "/", "/assets/app.js"])
def test_cors_answers_only_the_public_origin(prod, path: str) -> None:
    foreign, public = prod
    theirs = httpx.get(public + path, headers={"Origin": foreign.url}, timeout=15)
    assert "access-control-allow-origin" not in theirs.headers  # (Allow-Credentials alone lets nothing through)
    ours = httpx.get(public + path, headers={"Origin": public}, timeout=15)
    assert ours.headers["access-control-allow-origin"] == public
    preflight = httpx.options(
        public + path, headers={"Origin": foreign.url, "Access-Control-Request-Method": "POST"}, timeout=15
    )
    assert preflight.status_code == 400 and "access-control-allow-origin" not in preflight.headers


def test_export_is_not_readable_cross_origin(prod) -> None:
    """A page on another port of the same host cannot read the signed-in user's export."""
    foreign, public = prod
    browser = httpx.Client(base_url=public, timeout=15)
    signup = {"email": "victim@example.com", "password": "correct horse battery", "password2": "correct horse battery"}
    assert browser.post("/auth/local/signup", data=signup, headers={"Origin": public}).status_code == 303
    response = browser.get("/api/account/export", headers={"Origin": foreign.url})
    assert response.status_code == 200  # the cookie went along (SameSite=Lax: same site) ...
    assert "access-control-allow-origin" not in response.headers  # ... but the browser hides the body
    browser.close()


# --------------------------------------------------------------------------- headers (issue 11, item 10)


def script_hash(body: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"


@pytest.mark.parametrize("path", ["/assets/app.js", "/rubin.js"])
def test_built_scripts_skip_the_headers_only_documents_obey(prod, path: str) -> None:
    """CSP and Permissions-Policy govern documents and workers, not scripts or CSS: ~1.7 kB less per file."""
    _, public = prod
    headers = httpx.get(public + path, timeout=15).headers
    assert headers["content-type"].startswith("text/javascript")
    assert "content-security-policy" not in headers and "permissions-policy" not in headers
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    missing = httpx.get(public + "/assets/missing.js", timeout=15).headers  # the 404 page: a document
    assert "frame-ancestors 'none'" in missing["content-security-policy"]


@pytest.mark.parametrize(
    "path", ["/", "/api/health", "/api/version", "/auth/signed-out", "/auth/nope", "/missing.js", "/sw.js"]
)
def test_security_headers_on_every_route(prod, path: str) -> None:
    _, public = prod
    response = httpx.get(public + path, timeout=15)
    headers = response.headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert "camera=()" in headers["permissions-policy"] and "microphone=()" in headers["permissions-policy"]
    csp = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'" and csp["default-src"] == "'self'"
    scripts = csp["script-src"].split()
    assert "'unsafe-inline'" not in scripts and "*" not in scripts and "data:" not in scripts
    assert script_hash(INLINE) in scripts  # the built page's inline script, and nothing inline besides
    assert "strict-transport-security" not in headers  # plain http


def test_plain_routes_also_get_headers(start_app) -> None:
    """build_api() served alone (as the route tests do) has the headers too, on 404s included."""
    app = start_app()
    for path in ("/api/health", "/nowhere"):
        response = app.client().get(path)
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_hsts_only_over_https_from_a_trusted_proxy(start_app, serve: Serve) -> None:
    start_app(trusted_proxies="127.0.0.1")
    url = serve(build_api())
    assert "strict-transport-security" not in httpx.get(url + "/api/version", timeout=15).headers
    https = httpx.get(url + "/api/version", headers={"X-Forwarded-Proto": "https"}, timeout=15)
    assert https.headers["strict-transport-security"].startswith("max-age=")


def test_forwarded_proto_from_an_untrusted_peer_is_ignored(start_app, serve: Serve) -> None:
    start_app(trusted_proxies="10.0.0.0/8")
    url = serve(build_api())
    response = httpx.get(url + "/api/version", headers={"X-Forwarded-Proto": "https"}, timeout=15)
    assert "strict-transport-security" not in response.headers


# --------------------------------------------------------------------------- redirects with a forged Host


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/login", "/login/"), ("/auth/signed-out/", "/auth/signed-out"), ("//evil.example/login", None)],
)
def test_redirects_never_follow_the_host_header(prod, path: str, expected: str | None) -> None:
    _, public = prod
    response = httpx.get(public + path, headers={"Host": "evil.example"}, timeout=15)
    if expected is None and response.status_code not in (301, 302, 307, 308):
        return  # no redirect at all is fine too
    assert response.status_code in (301, 302, 307, 308), response.status_code
    location = response.headers["location"]  # a path on this site, never a URL built from the Host header
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    if expected:
        assert location == expected


# --------------------------------------------------------------------------- forwarded client address


def session_ip(app: LiveApp) -> str:
    return app.query("SELECT ip FROM auth_sessions ORDER BY id DESC LIMIT 1")[0][0]


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(start_app, serve: Serve) -> None:
    app = start_app()  # no TRUSTED_PROXIES
    url = serve(build_api())
    data = {"email": "a@example.com", "password": "correct horse battery", "password2": "correct horse battery"}
    headers = {"Origin": url, "X-Forwarded-For": "203.0.113.9"}
    response = httpx.post(url + "/auth/local/signup", data=data, headers=headers, timeout=15)
    assert response.status_code == 303
    assert session_ip(app) == "127.0.0.1"


def test_forwarded_for_from_a_trusted_proxy_is_the_client(start_app, serve: Serve) -> None:
    app = start_app(trusted_proxies="127.0.0.1/32")
    url = serve(build_api())
    data = {"email": "a@example.com", "password": "correct horse battery", "password2": "correct horse battery"}
    # The browser's page is https (TLS ends at the proxy), so that is its Origin.
    origin = url.replace("http://", "https://", 1)
    headers = {"Origin": origin, "X-Forwarded-For": "198.51.100.1, 203.0.113.9", "X-Forwarded-Proto": "https"}
    response = httpx.post(url + "/auth/local/signup", data=data, headers=headers, timeout=15)
    assert response.status_code == 303
    assert session_ip(app) == "203.0.113.9"  # the rightmost address the trusted proxy saw
    cookie = session_cookie(response)
    assert cookie is not None and "secure" in cookie  # TLS ended at the proxy


def test_forwarded_proto_from_an_untrusted_peer_gives_no_secure_cookie(start_app, serve: Serve) -> None:
    start_app()
    url = serve(build_api())
    data = {"email": "a@example.com", "password": "correct horse battery", "password2": "correct horse battery"}
    headers = {"Origin": url, "X-Forwarded-Proto": "https"}
    response = httpx.post(url + "/auth/local/signup", data=data, headers=headers, timeout=15)
    cookie = session_cookie(response)
    assert cookie is not None and "secure" not in cookie


# --------------------------------------------------------------------------- provider callbacks (item 7, NUL)


@pytest.mark.parametrize("path", ["/auth/callback/a%00b", "/auth/login/a%00b", "/auth/callback/%E2%80%AEx"])
def test_odd_provider_ids_go_back_to_login(start_app, path: str) -> None:
    app = start_app()
    response = app.client().get(path)
    assert login_error(response)["error"] == ["unknown_provider"]


def audit_rows(app: LiveApp) -> int:
    return int(app.query("SELECT count(*) FROM audit_events WHERE action = 'provider_failed'")[0][0])


def test_junk_callbacks_cannot_flood_the_audit_log(start_app) -> None:
    app = start_app()
    client = app.client()
    answers = [client.get(f"/auth/callback/junk-{i}?code=x&state=y") for i in range(30)]
    codes = [parse_qs(urlsplit(r.headers["location"]).query)["error"][0] for r in answers]
    assert set(codes[:20]) == {"unknown_provider"}
    assert set(codes[20:]) == {"login_too_many"}  # over the per-IP budget: not even looked at
    assert audit_rows(app) == 3  # only a small per-IP budget of unknown-provider rows is written


def test_failures_of_a_configured_provider_are_audited_within_a_budget(start_app, oidc_provider) -> None:
    provider = {"id": "kc", "name": "KC", "issuer": oidc_provider.issuer, "client_id": "rubin", "client_secret": "s"}
    app = start_app(auth_providers=[provider])
    client = app.client()
    for _ in range(15):
        assert login_error(client.get("/auth/callback/kc?code=x&state=y"))["error"]
    assert audit_rows(app) == 10


# --------------------------------------------------------------------------- health and the cache (item 11)


def test_health_shows_cache_counters_only_to_an_admin(start_app) -> None:
    app = start_app(llm_retries=0)
    anonymous = app.client().get("/api/health")
    assert anonymous.status_code == 200 and "cache" not in anonymous.json()
    admin, user = app.client(), app.client()
    app.sign_up(admin, "admin@example.com")  # the first account is the admin
    app.sign_up(user, "user@example.com")
    assert "cache" not in user.get("/api/health").json()
    assert admin.get("/api/health").json()["cache"] == {"hits": 0, "misses": 0}


def test_a_plain_http_page_cannot_post_to_an_https_app(start_app, serve: Serve) -> None:
    """Login CSRF across schemes: http://host is another origin than https://host (a downgraded page)."""
    start_app(trusted_proxies="127.0.0.1/32")
    url = serve(build_api())
    data = {"email": "b@example.com", "password": "correct horse battery", "password2": "correct horse battery"}
    headers = {"Origin": url, "X-Forwarded-Proto": "https"}  # the proxy saw https, the page was http
    response = httpx.post(url + "/auth/local/signup", data=data, headers=headers, timeout=15)
    assert session_cookie(response) is None
    assert "bad_origin" in response.headers.get("location", "")


# --------------------------------------------------------------------------- Secure cookies and HSTS (issue 13)


@pytest.mark.parametrize(("trusted", "secure"), [("127.0.0.1", True), ("10.0.0.0/8", False)])
def test_every_cookie_is_secure_when_a_trusted_proxy_says_https(
    start_app, serve: Serve, oidc_provider: OIDCProvider, trusted: str, secure: bool
) -> None:
    """Also the sign-in flow cookie (set by a middleware that only knows PUBLIC_URL, empty here)."""
    provider = {"id": "mock", "issuer": oidc_provider.issuer, "client_id": "rubin", "client_secret": "s3cret-value"}
    start_app(trusted_proxies=trusted, auth_providers=[provider])
    url = serve(build_api())
    response = httpx.get(url + "/auth/login/mock", headers={"X-Forwarded-Proto": "https"}, timeout=15)
    assert response.status_code == 302, response.headers.get("location")
    flow = [c for c in response.headers.get_list("set-cookie") if c.startswith("rubin_flow=")]
    assert len(flow) == 1
    assert ("; secure" in flow[0].lower()) is secure  # an untrusted peer's X-Forwarded-Proto changes nothing


@pytest.mark.parametrize(("max_age", "expected"), [("600", "max-age=600"), ("0", None)])
def test_hsts_max_age_is_a_setting(start_app, serve: Serve, max_age: str, expected: str | None) -> None:
    start_app(trusted_proxies="127.0.0.1", hsts_max_age=max_age)
    url = serve(build_api())
    response = httpx.get(url + "/api/version", headers={"X-Forwarded-Proto": "https"}, timeout=15)
    assert response.headers.get("strict-transport-security") == expected


@pytest.mark.parametrize(("trusted", "scheme"), [("127.0.0.1", "https"), ("10.0.0.0/8", "http")])
def test_the_provider_callback_follows_the_trusted_proxys_scheme(
    start_app, serve: Serve, oidc_provider: OIDCProvider, trusted: str, scheme: str
) -> None:
    """Without PUBLIC_URL the callback is built from the request: https when a trusted TLS proxy says so."""
    provider = {"id": "mock", "issuer": oidc_provider.issuer, "client_id": "rubin", "client_secret": "s3cret-value"}
    start_app(trusted_proxies=trusted, auth_providers=[provider])
    url = serve(build_api())
    response = httpx.get(url + "/auth/login/mock", headers={"X-Forwarded-Proto": "https"}, timeout=15)
    callback = parse_qs(urlsplit(response.headers["location"]).query)["redirect_uri"][0]
    assert callback == f"{scheme}://{url.split('://', 1)[1]}/auth/callback/mock"
