"""Extra HTTP routes, mounted through rx.App(api_transformer=...)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from rubin_app.api.auth import AuthApp, export
from rubin_app.services.llm import LLMError
from rubin_app.services.runtime import get_runtime


async def health(_: Request) -> JSONResponse:
    """Liveness plus whether LocalAI answers: {"status": "ok"|"degraded", "localai": ...}."""
    rt = get_runtime()
    try:
        models = await rt.client.list_models()
        localai = {"ok": True, "models": len(models)}
    except LLMError as exc:
        localai = {"ok": False, "error": exc.code}
    status = "ok" if localai["ok"] else "degraded"
    return JSONResponse({"status": status, "localai": localai})


def build_api() -> Starlette:
    """The Starlette app Reflex mounts its own routes into."""
    return Starlette(
        routes=[
            Route("/api/health", health),
            Route("/api/account/export", export),
            Mount("/auth", app=AuthApp()),
        ]
    )
