"""Security headers on every HTTP response (pages, built files, /api, /auth, 404s), and redirects pinned home.

A pure ASGI middleware, the outermost of Rubin's layers (rubin_app/api/routes.py), so it also covers the
frontend build Reflex serves from inside them. It never overrides a header a route set itself.

The Content-Security-Policy is as strict as Reflex's production build allows (see `policy`): scripts only
from this origin plus the inline scripts of the built pages, allowed one by one by their SHA-256 (read from
the build on disk); `'unsafe-eval'` because Reflex runs every `rx.call_script` through `eval`; inline styles
because Radix and emotion write style attributes and <style> tags. Nothing is loaded from other origins.

The two long headers that only documents and workers obey (Content-Security-Policy, Permissions-Policy) are left
off the build's hashed scripts and stylesheets under /assets/ and the page's own scripts at the root (/rubin.js,
/history.js...; scripts and CSS are neither documents nor workers; the service worker is /sw.js): on a first load
they were ~1.7 kB of headers per file, about a sixth of the bytes (docs/performance.md). Pages, /sw.js, every route
and every error keep them all.

Over HTTPS (the connection's own with TLS_CERT_FILE, or a trusted proxy's X-Forwarded-Proto) responses also get
HSTS, and every cookie they set gets `Secure`, whichever layer set it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rubin_app.config import get_settings
from rubin_app.services.net import forwarded_proto, origin_of

SECURE_ATTRIBUTE = re.compile(rb";\s*secure\s*(;|$)", re.IGNORECASE)
PERMISSIONS = (
    "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), hid=(), "
    "magnetometer=(), microphone=(), midi=(), payment=(), publickey-credentials-get=(self), serial=(), usb=(), "
    "xr-spatial-tracking=(), browsing-topics=()"
)
FIXED_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "permissions-policy": PERMISSIONS,
    "cross-origin-opener-policy": "same-origin",
}
SCAN_SECONDS = 5.0  # how often the build's pages are re-checked for new inline scripts
DOCUMENT_ONLY = (b"content-security-policy", b"permissions-policy")
SUBRESOURCE_TYPES = (b"text/javascript", b"application/javascript", b"text/css")
INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def inline_script_hashes(static_dir: Path) -> tuple[str, ...]:
    """'sha256-…' sources of every inline <script> in the built pages (empty without a build)."""
    found: set[str] = set()
    for page in sorted(static_dir.rglob("*.html")) if static_dir.is_dir() else []:
        for body in INLINE_SCRIPT.findall(page.read_bytes()):
            if body.strip():
                found.add("'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'")
    return tuple(sorted(found))


def _websocket_origin(origin: str) -> str:
    return "ws" + origin[4:] if origin.startswith("http") else ""


@lru_cache(maxsize=8)  # one string per build (and settings): not rebuilt for every response
def policy(script_hashes: tuple[str, ...], public_url: str = "", api_url: str = "") -> str:
    """The Content-Security-Policy for the built app (see the module's docstring for each relaxation)."""
    connect = ["'self'"]  # 'self' covers ws(s):// of this host in current browsers; named too for older ones
    for url in (public_url, api_url):
        if origin := origin_of(url):
            connect += [origin, _websocket_origin(origin)]
    scripts = ["'self'", *script_hashes, "'unsafe-eval'"]
    directives = {
        "default-src": ["'self'"],
        "script-src": scripts,
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": list(dict.fromkeys(connect)),
        "worker-src": ["'self'"],
        "manifest-src": ["'self'"],
        "media-src": ["'self'"],
        "object-src": ["'none'"],
        "frame-src": ["'none'"],
        "child-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def relative_location(location: str, host: str) -> str | None:
    """A redirect to this very host (built from the Host header) as a same-origin path; None: leave it.

    Starlette's trailing-slash and directory redirects write `http://<Host header>/path`; a forged Host would
    send the browser elsewhere. A path is what they mean. Leading slashes and backslashes are collapsed so the
    result can never be a protocol-relative URL (`//evil.example`).
    """
    try:
        parts = urlsplit(location)
    except ValueError:
        return "/"
    if not parts.scheme or not parts.netloc or parts.netloc.lower() != host.lower():
        return None
    path = "/" + parts.path.lstrip("/\\")
    return path + (f"?{parts.query}" if parts.query else "")


def request_scheme(scope: Scope) -> str:
    """The scheme the client used: the connection's (https when served with TLS_CERT_FILE), or a trusted proxy's."""
    peer = scope["client"][0] if scope.get("client") else ""
    proto = Headers(scope=scope).get("x-forwarded-proto", "")
    return forwarded_proto(peer, proto, scope.get("scheme", "http"), get_settings().trusted_proxies)


def cookies_secure(scope: Scope) -> bool:
    """Whether every cookie of this response must be Secure: COOKIE_SECURE, else the request came over HTTPS."""
    configured = get_settings().cookie_secure
    return configured if configured is not None else request_scheme(scope) == "https"


def subresource(path: str, status: int, content_type: bytes) -> bool:
    """A built script or stylesheet, or one of the page's scripts at the root (never a page or the worker, /sw.js):
    the document-only headers are left off it."""
    at_root = path.count("/") == 1 and path.endswith((".js", ".css")) and path != "/sw.js"
    return (
        (path.startswith("/assets/") or at_root)
        and status == 200
        and content_type.lower().startswith(SUBRESOURCE_TYPES)
    )


def with_secure(cookie: bytes) -> bytes:
    """A Set-Cookie value with the Secure attribute (unchanged when it has it)."""
    return cookie if SECURE_ATTRIBUTE.search(cookie) else cookie + b"; Secure"


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response; self-redirects made relative."""

    def __init__(self, app: ASGIApp, static_dir: Path) -> None:
        self.app = app
        self.static_dir = static_dir
        self._hashes: tuple[str, ...] = ()
        self._scanned_at = float("-inf")
        self._stamp: object = None

    def _script_hashes(self) -> tuple[str, ...]:
        now = time.monotonic()
        if now - self._scanned_at >= SCAN_SECONDS:
            self._scanned_at = now
            try:
                pages = sorted(self.static_dir.rglob("*.html")) if self.static_dir.is_dir() else []
                stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in pages)
                if stamp != self._stamp:
                    self._hashes, self._stamp = inline_script_hashes(self.static_dir), stamp
            except OSError:
                pass
        return self._hashes

    def headers_for(self, scope: Scope) -> dict[str, str]:
        """The headers of a response to this request."""
        settings = get_settings()
        headers = {
            "content-security-policy": policy(self._script_hashes(), settings.public_url, settings.api_url),
            **FIXED_HEADERS,
        }
        # HSTS_MAX_AGE (a year by default); no includeSubDomains: sibling subdomains may be other apps, maybe on http.
        if settings.hsts_max_age and request_scheme(scope) == "https":
            headers["strict-transport-security"] = f"max-age={settings.hsts_max_age}"
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(scope)
        host = Headers(scope=scope).get("host", "")
        secure = cookies_secure(scope)  # every cookie, whoever sets it (the flow cookie's middleware cannot tell)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                present = {name.lower() for name, _ in raw}
                for i, (name, value) in enumerate(raw):
                    if secure and name.lower() == b"set-cookie":
                        raw[i] = (name, with_secure(value))
                    if name.lower() == b"location" and 300 <= message["status"] < 400:
                        fixed = relative_location(value.decode("latin-1"), host)
                        if fixed is not None:
                            raw[i] = (name, fixed.encode("latin-1"))
                content_type = next((v for n, v in raw if n.lower() == b"content-type"), b"")
                skip = DOCUMENT_ONLY if subresource(scope["path"], message["status"], content_type) else ()
                raw += [(k.encode(), v.encode()) for k, v in extra.items() if k.encode() not in {*present, *skip}]
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)
