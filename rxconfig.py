"""Reflex config: every value comes from rubin_app.config."""

import reflex as rx
from reflex_base.plugins.sitemap import SitemapPlugin

from rubin_app.config import get_settings

_settings = get_settings()

config = rx.Config(
    app_name="rubin_app",
    frontend_port=_settings.frontend_port,
    **({"api_url": _settings.api_url} if _settings.api_url else {}),
    telemetry_enabled=False,
    show_built_with_reflex=False,
    plugins=[
        rx.plugins.RadixThemesPlugin(
            theme=rx.theme(appearance="inherit", accent_color="ruby", gray_color="sand", radius="large")
        )
    ],
    disable_plugins=[SitemapPlugin],
)
