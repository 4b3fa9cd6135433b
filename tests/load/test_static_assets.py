"""The built frontend over real HTTP: compressed from its build-time sidecars, hashed files cached for a year,
pages and the service worker revalidated (rubin_app/api/static_assets.py, rxconfig.py)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import brotli
import httpx
import pytest
from reflex.utils.precompressed_staticfiles import PrecompressedStaticFiles
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from rubin_app.api.static_assets import IMMUTABLE, StaticCacheHeaders
from tests.loopback import serve_in_thread

SCRIPT = b"export const hello = () => 'hello from the built app';\n" * 50
PAGE = b"<!doctype html><html><head><script type=module src=/assets/entry-AbC123.js></script></head></html>"


def write_build(static: Path) -> None:
    """A production build as Reflex's compress-static.js leaves it: each file plus .br and .gz sidecars."""
    (static / "assets").mkdir(parents=True)
    worker = b"self.addEventListener('fetch', () => {});"
    files = {"assets/entry-AbC123.js": SCRIPT, "index.html": PAGE, "sw.js": worker}
    for name, body in files.items():
        (static / name).write_bytes(body)
        (static / (name + ".br")).write_bytes(brotli.compress(body))
        (static / (name + ".gz")).write_bytes(gzip.compress(body))


def configured_encodings() -> list[str]:
    """The sidecar formats rxconfig.py asks Reflex to build and serve."""
    import rxconfig

    return list(rxconfig.config.frontend_compression_formats)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """Reflex's static server for a build (the formats of rxconfig.py) under an /api route, wrapped like the app."""
    write_build(tmp_path / "client")

    async def health(_: object) -> JSONResponse:
        return JSONResponse({"ok": True}, headers={"Cache-Control": "no-store"})

    async def plain(_: object) -> JSONResponse:
        return JSONResponse({"ok": True})

    frontend = PrecompressedStaticFiles(directory=tmp_path / "client", html=True, encodings=configured_encodings())
    app = Starlette(routes=[Route("/api/health", health), Route("/api/plain", plain), Mount("/", app=frontend)])
    url, stop = serve_in_thread(StaticCacheHeaders(app))
    yield url
    stop()


def test_rxconfig_builds_brotli_and_gzip_sidecars() -> None:
    assert configured_encodings() == ["brotli", "gzip"]


def test_a_hashed_script_comes_brotli_compressed_and_cached_for_a_year(site: str) -> None:
    response = httpx.get(f"{site}/assets/entry-AbC123.js", headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "br"
    assert int(response.headers["content-length"]) < len(SCRIPT) / 5
    assert response.content == SCRIPT  # httpx decodes brotli: the bytes are the script's
    assert response.headers["cache-control"] == IMMUTABLE == "public, max-age=31536000, immutable"
    assert "Accept-Encoding" in response.headers["vary"]


def test_gzip_for_a_browser_without_brotli_and_plain_for_none(site: str) -> None:
    gzipped = httpx.get(f"{site}/assets/entry-AbC123.js", headers={"Accept-Encoding": "gzip"})
    assert gzipped.headers["content-encoding"] == "gzip" and gzipped.content == SCRIPT
    plain = httpx.get(f"{site}/assets/entry-AbC123.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == SCRIPT
    assert plain.headers["cache-control"] == IMMUTABLE


@pytest.mark.parametrize("path", ["/", "/c/42", "/sw.js"])
def test_pages_and_the_service_worker_are_revalidated_not_kept(site: str, path: str) -> None:
    response = httpx.get(f"{site}{path}", headers={"Accept-Encoding": "br"})
    assert response.status_code in (200, 404)  # /c/42: no router here, the 404 page (still never kept)
    assert response.headers["cache-control"] == "no-cache"
    if path == "/":
        assert response.headers["content-encoding"] == "br" and response.content == PAGE
    again = httpx.get(f"{site}{path}", headers={"If-None-Match": response.headers.get("etag", "")})
    assert path != "/" or again.status_code == 304  # revalidation is one cheap round trip


def test_a_missing_hashed_file_is_not_cached_for_a_year(site: str) -> None:
    response = httpx.get(f"{site}/assets/gone-Zz9.js")
    assert response.status_code == 404 and response.headers["cache-control"] == "no-cache"


def test_routes_keep_their_own_cache_headers(site: str) -> None:
    assert httpx.get(f"{site}/api/health").headers["cache-control"] == "no-store"
    assert "cache-control" not in httpx.get(f"{site}/api/plain").headers
