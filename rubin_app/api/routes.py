"""Extra HTTP routes, mounted through rx.App(api_transformer=...)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from rubin_app.api.auth import AuthApp, export
from rubin_app.services.runtime import get_runtime


async def health(_: Request) -> JSONResponse:
    """Liveness plus LocalAI and Redis: {"status": "ok"|"degraded", "localai": ..., "redis": ..., "cache": ...}.

    Redis away is "degraded", not down: the app keeps serving with in-process fallbacks.
    """
    rt = get_runtime()
    localai = await rt.localai_health()
    redis = await rt.redis_health()
    cache = await rt.cache.stats() if redis.get("ok") else {"hits": rt.cache.hits, "misses": rt.cache.misses}
    ok = localai["ok"] and redis.get("ok", True)
    return JSONResponse({"status": "ok" if ok else "degraded", "localai": localai, "redis": redis, "cache": cache})


def build_api() -> Starlette:
    """The Starlette app Reflex mounts its own routes into."""
    return Starlette(
        routes=[
            Route("/api/health", health),
            Route("/api/account/export", export),
            Mount("/auth", app=AuthApp()),
        ]
    )
