"""GET /metrics for Prometheus, behind the bearer token METRICS_TOKEN (no token configured: 404)."""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from rubin_app.observability import metrics as figures
from rubin_app.services.runtime import get_runtime


def _authorized(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def metrics(request: Request) -> Response:
    """Every worker's figures in the Prometheus text format; 401 without the right `Authorization: Bearer`."""
    rt = get_runtime()
    if rt.settings.metrics_token is None:
        return PlainTextResponse("Not Found", status_code=404)
    if not _authorized(request, rt.settings.metrics_token.get_secret_value()):
        return PlainTextResponse(
            "metrics need Authorization: Bearer <METRICS_TOKEN>", status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"},
        )  # fmt: skip
    redis = await rt.redis_health()
    localai = await rt.localai_health()
    figures.set_dependencies(redis_degraded=bool(redis.get("configured")) and not redis.get("ok"),
                             localai_up=bool(localai.get("ok")))  # fmt: skip
    body, content_type = await asyncio.to_thread(figures.render)
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
