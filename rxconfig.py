"""Reflex config: every value comes from rubin_app.config."""

import os

import reflex as rx
from reflex_base.plugins.sitemap import SitemapPlugin

from rubin_app import serve_tls, serve_workers
from rubin_app.config import get_settings
from rubin_app.core import tls
from rubin_app.observability import multiprocess
from rubin_app.services.net import origin_of

_settings = get_settings()
# Cross-origin reads of /api and /auth (CORS, with credentials) only for the app's own public origin; in dev
# the frontend (FRONTEND_PORT) and the backend are two origins, so the dev frontend is allowed too. The
# websocket's Origin is checked by rubin_app/state/socket.py against the same rule.
_origins = [origin_of(_settings.public_url)] if _settings.public_url else []
if os.environ.get("REFLEX_ENV_MODE", "dev") != "prod":
    _origins += [f"http://localhost:{_settings.frontend_port}", f"http://127.0.0.1:{_settings.frontend_port}"]
# Prometheus figures of every worker in one directory per instance (GET /metrics adds them up); set before any
# worker starts and before prometheus-client is imported.
multiprocess.prepare()
if _settings.workers:
    # Reflex's prod server reads its worker count from this variable (default with Redis: 2 x cores + 1).
    os.environ["GRANIAN_WORKERS"] = str(_settings.workers)
# TLS_CERT_FILE: the production server speaks HTTPS itself (rubin_app/serve_tls.py). The page then reaches the
# websocket at PUBLIC_URL (Reflex's page would otherwise assume port 443 for https).
_api_url = _settings.api_url
if os.environ.get("REFLEX_ENV_MODE", "dev") == "prod":
    serve_workers.install()  # a worker that dies is started again, not the end of the whole server
if os.environ.get("REFLEX_ENV_MODE", "dev") == "prod" and serve_tls.install(_settings):
    _api_url = _api_url or origin_of(_settings.public_url)

config = rx.Config(
    app_name="rubin_app",
    frontend_port=_settings.frontend_port,
    **({"api_url": _api_url} if _api_url else {}),
    # REDIS_URL: Reflex keeps state in Redis (several workers share it) instead of on disk; its clients get the
    # same TLS options as Rubin's own (REDIS_CA_FILE...: rubin_app/core/tls.py).
    **({"redis_url": tls.redis_url(_settings)} if _settings.redis_url else {}),
    cors_allowed_origins=_origins,
    telemetry_enabled=False,
    show_built_with_reflex=False,
    plugins=[
        rx.plugins.RadixThemesPlugin(
            theme=rx.theme(appearance="inherit", accent_color="ruby", gray_color="sand", radius="large")
        )
    ],
    disable_plugins=[SitemapPlugin],
)
