"""Reflex config: every value comes from rubin_app.config."""

import os

import reflex as rx
from reflex_base.plugins.sitemap import SitemapPlugin

from rubin_app.config import get_settings

_settings = get_settings()
if _settings.workers:
    # Reflex's prod server reads its worker count from this variable (default with Redis: 2 x cores + 1).
    os.environ["GRANIAN_WORKERS"] = str(_settings.workers)

config = rx.Config(
    app_name="rubin_app",
    frontend_port=_settings.frontend_port,
    **({"api_url": _settings.api_url} if _settings.api_url else {}),
    # REDIS_URL: Reflex keeps state in Redis (several workers share it) instead of on disk.
    **({"redis_url": _settings.redis_url} if _settings.redis_url else {}),
    telemetry_enabled=False,
    show_built_with_reflex=False,
    plugins=[
        rx.plugins.RadixThemesPlugin(
            theme=rx.theme(appearance="inherit", accent_color="ruby", gray_color="sand", radius="large")
        )
    ],
    disable_plugins=[SitemapPlugin],
)
