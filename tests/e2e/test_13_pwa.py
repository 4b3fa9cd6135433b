"""Rubin AI as an installable app (PWA): manifest and icons, service worker, offline page, update prompt.

All in the real production build and Debian Chromium: Chromium itself judges installability (DevTools
protocol Page.getInstallabilityErrors), the network is cut with the browser context's offline switch,
and a deploy is simulated by changing the running app's built files on disk, as a new build does.
"""

from __future__ import annotations

import gzip
import re
import secrets
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserType, Page, expect

from .conftest import DESKTOP, ROOT, AppServer
from .helpers import Account, add_session, open_app, session_token, wait_live, wait_until

BUILD = ROOT / ".web" / "build" / "client"  # what `reflex run --env prod` serves
SW_ACTIVE = """async () => {
    const registration = await navigator.serviceWorker.ready;
    return registration.active && registration.active.state === "activated";
}"""
CONTROLLED = "() => !!navigator.serviceWorker.controller"
CACHED_URLS = """async () => {
    const urls = [];
    for (const name of await caches.keys()) {
        for (const request of await (await caches.open(name)).keys()) urls.push(new URL(request.url).pathname);
    }
    return urls;
}"""


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG (from its IHDR chunk)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def wait_for_service_worker(page: Page) -> None:
    """The service worker is installed, active and controls the page."""
    page.wait_for_function(SW_ACTIVE, timeout=30_000)
    page.wait_for_function(CONTROLLED, timeout=15_000)
    scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == page.evaluate("location.origin + '/'"), scope  # the whole app


def test_manifest_icons_and_head_tags(app_server: AppServer) -> None:
    with httpx.Client(base_url=app_server.url, timeout=10) as http:
        response = http.get("/manifest.webmanifest")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/manifest+json")
        manifest = response.json()
        assert manifest["name"] == "Rubin AI" and manifest["short_name"] == "Rubin"
        assert manifest["display"] == "standalone" and manifest["start_url"] == "/" and manifest["scope"] == "/"
        assert manifest["theme_color"].startswith("#") and manifest["background_color"].startswith("#")
        assert [s["name"] for s in manifest["shortcuts"]] == ["New chat"]
        sizes = {}
        for icon in manifest["icons"]:
            got = http.get(icon["src"])
            assert got.status_code == 200, icon["src"]
            if icon["type"] == "image/png":
                width, height = png_size(got.content)
                assert icon["sizes"] == f"{width}x{height}", icon
                sizes.setdefault(icon["purpose"], set()).add(width)
        assert sizes == {"any": {192, 512}, "maskable": {192, 512}}

        metas = re.findall(r"<meta [^>]*theme-color[^>]*>", http.get("/").text)
        assert len(metas) == 2 and all("media=" in m for m in metas), metas
        assert png_size(http.get("/icons/apple-touch-icon.png").content) == (180, 180)
        assert http.get("/icons/favicon.ico").content[:4] == b"\0\0\1\0"  # an ICO file
        assert http.get("/sw.js").headers["content-type"].startswith(("text/javascript", "application/javascript"))


@pytest.fixture
def installed_profile(
    browser_type: BrowserType, browser_type_launch_args: dict, base_url: str, e2e_user: Account, tmp_path: Path
) -> Iterator[Page]:
    """A page in a browser with a real profile on disk (Chromium offers no installation in incognito)."""
    context = browser_type.launch_persistent_context(
        str(tmp_path / "profile"), **browser_type_launch_args, base_url=base_url, **DESKTOP
    )
    try:
        add_session(context, base_url, session_token(base_url, e2e_user))
        yield context.pages[0] if context.pages else context.new_page()
    finally:
        context.close()


def test_chromium_finds_the_app_installable_with_an_active_service_worker(installed_profile: Page) -> None:
    page = installed_profile
    open_app(page)
    head = page.locator("head")
    expect(head.locator('link[rel="manifest"]')).to_have_attribute("href", "/manifest.webmanifest")
    expect(head.locator('link[rel="apple-touch-icon"]')).to_have_attribute("href", "/icons/apple-touch-icon.png")
    expect(head.locator('meta[name="apple-mobile-web-app-capable"]')).to_have_attribute("content", "yes")
    # The title bar follows the page: light here (the served page has one colour per colour scheme).
    expect(head.locator('meta[name="theme-color"]').first).to_have_attribute("content", "#fdfdfc")
    wait_for_service_worker(page)
    cdp = page.context.new_cdp_session(page)
    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    assert errors == [], errors
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["url"].endswith("/manifest.webmanifest") and manifest["errors"] == [], manifest["errors"]
    # Only the app shell and static files are cached: no chat data, API answers, sign-in or pages of chats.
    cached = page.evaluate(CACHED_URLS)
    assert "/offline.html" in cached and any(url.startswith("/assets/") for url in cached), cached
    assert not [url for url in cached if url.startswith(("/api/", "/auth/", "/_event", "/c/"))], cached


def test_the_offline_page_shows_when_the_network_is_cut(open_page: Callable[..., Page]) -> None:
    page = open_page()
    open_app(page)
    wait_for_service_worker(page)
    page.context.set_offline(True)
    page.reload()
    offline = page.get_by_test_id("offline-page")
    expect(offline).to_be_visible(timeout=20_000)
    expect(offline).to_contain_text("You're offline")
    expect(page.get_by_test_id("offline-retry")).to_have_text("Try again")
    # Back online, the offline page brings the app back by itself.
    page.context.set_offline(False)
    wait_live(page)
    expect(page.get_by_test_id("offline-page")).to_have_count(0)


def test_the_offline_page_speaks_russian(open_page: Callable[..., Page]) -> None:
    page = open_page(signed_in=False, locale="ru-RU")
    page.goto("/login")
    expect(page.locator("input[type=email]").first).to_be_visible(timeout=20_000)
    # The language is picked by an event after the page loads and then stored for the offline page: going
    # offline before that (a slow run) would test the stored-nothing case instead.
    page.wait_for_function("() => (localStorage.getItem('rubin_lang') || '').includes('ru')", timeout=20_000)
    wait_for_service_worker(page)
    page.context.set_offline(True)
    page.goto("/")  # a page never visited: nothing of it is cached, the offline page answers
    expect(page.get_by_test_id("offline-page")).to_contain_text("Нет подключения к сети")
    expect(page.get_by_test_id("offline-retry")).to_have_text("Повторить")
    page.context.set_offline(False)


@pytest.fixture
def deploy() -> Iterator[Callable[[], None]]:
    """Change the running app's build on disk as a new deploy does; the original files come back after."""
    saved: dict[Path, bytes | None] = {}

    def write(path: Path, data: bytes) -> None:
        saved.setdefault(path, path.read_bytes() if path.exists() else None)
        path.write_bytes(data)

    def run() -> None:
        # A new chunk with a new content hash, and a new service worker (its cache version bumped),
        # each with its pre-compressed copy, as the production build writes them.
        chunk = f"export const deployed = {secrets.token_hex(8)!r};\n".encode()
        write(BUILD / "assets" / f"deploy-{secrets.token_hex(4)}.js", chunk)
        sw = (BUILD / "sw.js").read_bytes().replace(b'const VERSION = "v1"', b'const VERSION = "v1-next"')
        assert b"v1-next" in sw
        write(BUILD / "sw.js", sw)
        write(BUILD / "sw.js.gz", gzip.compress(sw))

    yield run
    for path, data in saved.items():
        if data is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(data)


def test_a_new_build_brings_the_update_prompt(page: Page, deploy: Callable[[], None]) -> None:
    with page.expect_response("**/api/version") as first:
        open_app(page)
    assert first.value.json()["version"]
    wait_for_service_worker(page)
    assert page.evaluate(CACHED_URLS)  # the v1 worker filled its caches
    prompt = page.get_by_test_id("update-prompt")
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_timeout(500)
    expect(prompt).to_have_count(0)  # same build: nothing to offer

    deploy()

    # The user comes back to the tab: the page checks the deployed version and the service worker.
    def offered() -> bool:
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
        return prompt.is_visible()

    wait_until(offered, timeout=30, interval=1.2, what="the update prompt")
    expect(prompt).to_contain_text("A new version of Rubin is available")
    wait_live(page)  # non-blocking: the app is still usable under the prompt

    # The new service worker took over cleanly: the old version's caches are gone.
    page.wait_for_function(
        """async () => {
            const names = await caches.keys();
            return names.includes('rubin-shell-v1-next') && !names.includes('rubin-shell-v1');
        }""",
        timeout=30_000,
    )

    # "Later" hides it; coming back to the tab does not nag about the same version again.
    page.get_by_test_id("update-later").click()
    expect(prompt).to_have_count(0)
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_timeout(1500)
    expect(prompt).to_have_count(0)

    # A reload (what the prompt's button does) runs the new build, and then nothing is offered.
    page.reload()
    wait_live(page)
    page.wait_for_timeout(1500)
    expect(prompt).to_have_count(0)


def test_the_prompt_reload_button_reloads(page: Page, deploy: Callable[[], None]) -> None:
    with page.expect_response("**/api/version"):
        open_app(page)
    deploy()
    prompt = page.get_by_test_id("update-prompt")

    def offered() -> bool:
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
        return prompt.is_visible()

    wait_until(offered, timeout=30, interval=1.2, what="the update prompt")
    expect(page.get_by_test_id("update-reload")).to_have_text("Reload")
    with page.expect_navigation():
        page.get_by_test_id("update-reload").click()
    wait_live(page)
    expect(prompt).to_have_count(0)
