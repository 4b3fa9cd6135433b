"""Reflex config: every value comes from rubin_app.config."""

import os
from pathlib import Path

import reflex as rx
from reflex.utils import prerequisites
from reflex_base.plugins.sitemap import SitemapPlugin

from rubin_app import serve_tls, serve_workers
from rubin_app.config import get_settings
from rubin_app.core import tls
from rubin_app.lean_css import radix_css
from rubin_app.observability import multiprocess
from rubin_app.services.net import origin_of


class LeanRadixThemes(rx.plugins.RadixThemesPlugin):
    """Radix Themes with the colour scales Rubin uses only (Radix's documented per-file imports): the full
    styles.css carries all 30 scales, light and dark, sRGB and P3 (docs/performance.md)."""

    colors: tuple[str, ...] = ("ruby", "sand", "gray", "red", "green", "amber", "blue")

    def get_frontend_dependencies(self, **context: object) -> tuple[str, ...]:
        """Nothing to bundle as one namespace for dynamic components (Rubin has none), so the build keeps only the
        Radix components the pages use; the package itself is installed as the components' library."""
        return ()

    def get_stylesheet_paths(self, **context: object) -> tuple[str, ...]:
        """Tokens, the used colours, and the components and utilities Rubin can use instead of the whole styles.css."""
        if not self.enabled:
            return ()
        colors = tuple(f"@radix-ui/themes/tokens/colors/{c}.css" for c in self.colors)
        return ("@radix-ui/themes/tokens/base.css", *colors, "./radix-lean.css")

    def get_static_assets(self, **context: object) -> list[tuple[Path, str]]:
        """styles/radix-lean.css: Radix's components.css and utilities.css less unused components and responsive
        variants (rubin_app/lean_css.py), read from the installed package."""
        assets = list(super().get_static_assets(**context))  # type: ignore[arg-type]
        if self.enabled:
            package = prerequisites.get_web_dir() / "node_modules" / "@radix-ui" / "themes"
            assets.append((Path("styles/radix-lean.css"), radix_css(package)))
        return assets


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
    # Hashed build files are served brotli- or gzip-compressed from sidecars made at build time, with long-lived
    # cache headers (rubin_app/api/static_assets.py).
    frontend_compression_formats=["brotli", "gzip"],
    # Radix Themes' JS is imported where it is used, not as one namespace for dynamic components on every page.
    frontend_lazy_bundled_libraries=True,
    plugins=[
        LeanRadixThemes(theme=rx.theme(appearance="inherit", accent_color="ruby", gray_color="sand", radius="large"))
    ],
    disable_plugins=[SitemapPlugin],
)
