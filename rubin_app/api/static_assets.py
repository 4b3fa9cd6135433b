"""Cache headers for the built frontend: hashed files kept for a year, pages and unhashed files revalidated.

A pure ASGI layer around the whole app (rubin_app/rubin_app.py adds it after Rubin's other layers). Reflex's
production server sends the build's files from `.web/build/client` with brotli or gzip sidecars made at build
time (`frontend_compression_formats` in rxconfig.py) but no Cache-Control. This layer adds one to every
successful GET or HEAD of a frontend file:

- `/assets/*`: Vite names them by the hash of their content, so a name never changes meaning:
  `public, max-age=31536000, immutable` (a returning browser does not even ask);
- everything else the frontend serves (the pages, `/sw.js`, `/rubin.js`, icons, the manifest): `no-cache`, so the
  browser revalidates with the ETag / Last-Modified it has (a 304 when nothing changed) and a deploy shows at
  once; the service worker in particular must never be served from a stale HTTP cache.

Rubin's own routes (`/api`, `/auth`, `/v1`, `/metrics`, Reflex's `/_event`, `/_upload`, `/ping`, `/_health`) are
left as they are, and a header a route set itself is never replaced. Errors (404 included) get `no-cache`.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
HASHED_PREFIX = "/assets/"
NOT_FRONTEND = ("/api/", "/auth/", "/v1/", "/_event", "/_upload", "/_health", "/ping", "/metrics")


def cache_control(path: str, status: int) -> str | None:
    """The Cache-Control of a frontend response, None for a route that is not the frontend's."""
    if path.startswith(NOT_FRONTEND) or path in ("/api", "/auth", "/v1"):
        return None
    if path.startswith(HASHED_PREFIX) and status in (200, 206, 304):
        return IMMUTABLE
    return REVALIDATE


class StaticCacheHeaders:
    """ASGI middleware: Cache-Control on the frontend's files (see the module's docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_with_cache(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                value = cache_control(path, int(message["status"]))
                if value and not any(name.lower() == b"cache-control" for name, _ in raw):
                    message = {**message, "headers": [*raw, (b"cache-control", value.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_cache)
