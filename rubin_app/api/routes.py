"""Extra HTTP routes, mounted through rx.App(api_transformer=...)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rubin_app.api.auth import AuthApp, current_principal, export
from rubin_app.api.metrics import metrics
from rubin_app.api.openai.routes import build_openai_app
from rubin_app.api.security_headers import SecurityHeaders
from rubin_app.api.v1.app import build_rest_app
from rubin_app.observability.metrics import MetricsLayer
from rubin_app.services.runtime import get_runtime


async def health(request: Request) -> JSONResponse:
    """Liveness plus LocalAI and Redis: {"status": "ok"|"degraded", "localai": ..., "redis": ...}.

    Redis away is "degraded", not down: the app keeps serving with in-process fallbacks. The response
    cache's hit/miss counters are added only for a signed-in admin: to anyone else they would tell whether
    somebody just asked a given question; so is the state of each model connection.
    """
    rt = get_runtime()
    localai = await rt.localai_health()
    redis = await rt.redis_health()
    ok = localai["ok"] and redis.get("ok", True)
    body: dict[str, object] = {"status": "ok" if ok else "degraded", "localai": localai, "redis": redis}
    principal = await current_principal(request)
    if principal is not None and principal.is_admin:
        local = {"hits": rt.cache.hits, "misses": rt.cache.misses}
        body["cache"] = await rt.cache.stats() if redis.get("ok") else local
        # Each model connection as last seen (docs/connections.md); one down does not make the instance degraded.
        body["connections"] = [dataclasses.asdict(c) for c in rt.router.health()]
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


BUILD_CHECK_SECONDS = 2.0  # how stale the build's version may be (a stat of every built file at most this often)
_build_version: dict[str, object] = {"checked": 0.0, "stamp": None, "value": {}}
_version_lock = asyncio.Lock()


# What `reflex run --env prod` serves, relative to the app's directory (the process's working directory).
# Found by path: this layer imports no Reflex.
STATIC_DIR = Path(".web") / "build" / "client"


def _scan_build(static: Path, stamp: object) -> tuple[object, dict[str, str]]:
    """(stamp, {"version", "build"}) of the build on disk; the files are hashed only when the stamp moved.

    The version is a hash of every built file's path and content (pre-compressed copies aside), so it
    changes exactly when a deploy changes what the browser would load, and two builds of the same
    sources agree. "build" is React Router's manifest version, the one the page carries itself.
    """
    files = sorted(p for p in static.rglob("*") if p.is_file() and not p.name.endswith((".gz", ".br", ".zst")))
    new_stamp = tuple((str(p), st.st_size, st.st_mtime_ns) for p in files for st in [p.stat()])
    if new_stamp == stamp:
        return stamp, {}
    if not files:  # no production build (dev mode)
        return new_stamp, {"version": "", "build": ""}
    digest = hashlib.sha256()
    build = ""
    for path in files:
        rel = path.relative_to(static).as_posix()
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
        if match := re.fullmatch(r"assets/manifest-([\w-]+)\.js", rel):
            build = match.group(1)
    return new_stamp, {"version": digest.hexdigest()[:16], "build": build}


async def version(_: Request) -> JSONResponse:
    """The deployed frontend's version: {"version": hash of the build, "build": React Router manifest version}.

    The page compares it with the version it was loaded with and offers a reload when they differ
    (assets/pwa.js). Without a production build (dev mode) both are empty. Never cached.
    """
    async with _version_lock:
        now = time.monotonic()
        if not _build_version["value"] or now - float(_build_version["checked"]) >= BUILD_CHECK_SECONDS:
            static = STATIC_DIR
            try:
                stamp, value = await asyncio.to_thread(_scan_build, static, _build_version["stamp"])
            except OSError:
                stamp, value = None, {"version": "", "build": ""}
            if value or stamp is None:
                _build_version["value"] = value
            _build_version.update(checked=now, stamp=stamp)
        value = dict(_build_version["value"]) or {"version": "", "build": ""}
    return JSONResponse(value, headers={"Cache-Control": "no-store"})


class ApiLayers(list):
    """What `rx.App(api_transformer=...)` takes: Rubin's Starlette app, then the security headers around it.

    Reflex mounts its own app (events, the built frontend) inside the Starlette app and wraps the result in
    each following layer, so the headers cover every route. Called as an ASGI app itself (tests, no Reflex),
    it serves the same layers over a plain 404 in place of Reflex.
    """

    _served: ASGIApp | None = None

    def compose(self, inner: ASGIApp) -> ASGIApp:
        """The layers around `inner` exactly as Reflex applies them (reflex/app.py `App.__call__`)."""
        app = inner
        for layer in self:
            if isinstance(layer, Starlette):
                layer.mount("", app)
                app = layer
            else:
                app = layer(app)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._served is None:
            self._served = self.compose(PlainTextResponse("Not Found", status_code=404))
        await self._served(scope, receive, send)


API_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rubin AI · API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
.op{border:1px solid #ccc;border-radius:6px;margin:.5rem 0;padding:.5rem}.method{font-weight:700}
label{display:block;margin:.3rem 0}.output{background:#f4f4f4;padding:.5rem;white-space:pre-wrap;max-height:20rem;
overflow:auto}@media (prefers-color-scheme:dark){body{background:#111;color:#eee}.output{background:#222}}</style>
</head><body><main id="api-docs"><p>The OpenAI-compatible API is at <code>/v1</code>; Rubin's REST API below.
Schema: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p></main>
<script src="/api-docs.js"></script></body></html>"""


async def api_docs(_: Request) -> HTMLResponse:
    """Interactive API docs: every REST operation, with "Try it" (assets/api-docs.js)."""
    return HTMLResponse(API_DOCS_PAGE)


def build_api() -> ApiLayers:
    """Rubin's routes for Reflex to mount into, with every response's security headers outermost."""
    routes = Starlette(
        routes=[
            Route("/api/health", health),
            Route("/api/version", version),
            Route("/api/docs", api_docs),
            Route("/api/account/export", export),
            Route("/metrics", metrics),
            Mount("/auth", app=AuthApp()),
            Mount("/v1", app=build_openai_app()),
            Mount("/api/v1", app=build_rest_app()),
        ]
    )
    return ApiLayers([routes, MetricsLayer, lambda app: SecurityHeaders(app, STATIC_DIR)])
