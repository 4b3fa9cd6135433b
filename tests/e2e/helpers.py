"""What a user does and sees, as small Playwright helpers shared by the e2e tests."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.fakes.localai_standin import RequestRecord, StandIn, build_pieces, expected_reply

MAX_MESSAGE_CHARS = 2000  # the e2e app's MAX_MESSAGE_CHARS
DEFAULT_RATE = 40.0  # stand-in pieces per second unless a message says [[rate=R]]
DEFAULT_TOKENS = 20  # stand-in answer length unless a message says [[tokens=N]]
CHAT_URL = re.compile(r"/c/([0-9a-f]+)$")
HOME = re.compile(r"^http://[^/]+/$")
LOGIN_URL = re.compile(r"^http://[^/]+/login/?(\?.*)?$")
SESSION_COOKIE = "rubin_session"
PROVIDER_ID = "mock"  # the e2e app's one OpenID Connect provider (AUTH_PROVIDERS)
PROVIDER_NAME = "Mock ID"
LOGIN_MAX_FAILURES = 5  # the e2e app's per-account lockout threshold

# An init script recording every websocket frame the page receives (window.__frames).
RECORD_FRAMES = """
(() => {
  window.__frames = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...a) {
      super(...a);
      this.addEventListener('message', (ev) => { if (typeof ev.data === 'string') window.__frames.push(ev.data); });
    }
  };
})();
"""


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll a condition in the test process (e.g. a stand-in counter) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def unique(prefix: str) -> str:
    """A word no other test uses (so titles and echoes are unambiguous)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def expected(text: str, tokens: int = DEFAULT_TOKENS) -> str:
    """The full answer the stand-in gives to this user text (with the session's default length)."""
    return expected_reply([{"role": "user", "content": text}], tokens=tokens)


def pieces(text: str, tokens: int = DEFAULT_TOKENS) -> list[str]:
    """The stand-in's answer to this text, piece by piece."""
    return build_pieces([{"role": "user", "content": text}], tokens=tokens)[0]


def answer_requests(standin: StandIn) -> list[RequestRecord]:
    """The stand-in's answer requests: a new chat's title request (the default TITLE_MODE=llm) left out."""
    return [r for r in standin.records if not r.title]


def open_app(page: Page, path: str = "/") -> Page:
    """Navigate and wait until the page is hydrated and its on_load ran over the websocket.

    The model picker only appears once the backend has sent the model list (state from on_load), so
    its presence proves the websocket is connected and the page is live.
    """
    page.goto(path)
    wait_live(page)
    return page


def wait_live(page: Page) -> None:
    """Wait for the hydrated, connected page (see open_app)."""
    expect(page.get_by_test_id("model-select")).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("composer")).to_be_editable()
    expect(page.get_by_text("Cannot connect to server")).to_have_count(0)  # Reflex's connection-error toast


def send(page: Page, text: str) -> None:
    """Type a message and press Enter."""
    box = page.get_by_test_id("composer")
    box.fill(text)
    box.press("Enter")


def answers(page: Page) -> Locator:
    """Every answer in the open conversation."""
    return page.get_by_test_id("assistant-message")


def last_answer(page: Page) -> Locator:
    """The newest answer."""
    return answers(page).last


def body(message: Locator) -> Locator:
    """The rendered Markdown of a message."""
    return message.locator(".rubin-md").first


def wait_status(page: Page, status: str, timeout: float = 15_000) -> Locator:
    """Wait until the newest answer is saved with this status (complete/interrupted/error)."""
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-status", status, timeout=timeout)
    expect(page.get_by_test_id("streaming-answer")).to_have_count(0)
    return answer


def ask(page: Page, text: str, status: str = "complete") -> Locator:
    """Send a message and wait for its answer to end with `status`."""
    send(page, text)
    # The question and its (new) answer arrive in the same state update: once the question shows,
    # the last answer on the page is the new one.
    expect(page.get_by_test_id("user-message").last).to_contain_text(text.split("\n")[0][:40])
    return wait_status(page, status)


def chat_id(page: Page) -> str:
    """The id of the open conversation, from the URL (waits for /c/<id>)."""
    expect(page).to_have_url(CHAT_URL)
    match = CHAT_URL.search(page.url)
    assert match
    return match.group(1)


def sidebar_link(page: Page, cid: str, where: str = "sidebar") -> Locator:
    """The link to a conversation in the sidebar (or the drawer)."""
    return page.get_by_test_id(where).locator(f'[data-testid="chat-link"][href="/c/{cid}"]')


def chat_item(page: Page, cid: str) -> Locator:
    """A sidebar entry (link + menu) of a conversation."""
    link = page.locator(f'[data-testid="chat-link"][href="/c/{cid}"]')
    return page.get_by_test_id("sidebar").get_by_test_id("chat-item").filter(has=link)


def streamed_text(page: Page) -> str:
    """The text of the answer being streamed right now ('' when none)."""
    live = page.get_by_test_id("streaming-answer").locator(".rubin-md")
    return live.inner_text() if live.count() else ""


def wait_partial(page: Page, prefix: str, min_chars: int = 1, timeout: float = 15_000) -> str:
    """Wait until a live answer shows at least `min_chars` starting with `prefix` while Stop is offered.

    Both are read in one browser-side check, so the text is proven partial (the answer is still running).
    """
    handle = page.wait_for_function(
        """([prefix, minChars]) => {
            const live = document.querySelector('[data-testid="streaming-answer"] .rubin-md');
            const stop = document.querySelector('[data-testid="stop"]');
            if (!live || !stop) return false;
            const text = live.innerText.trim();
            return text.startsWith(prefix) && text.length >= minChars ? text : false;
        }""",
        arg=[prefix, min_chars],
        timeout=timeout,
        polling=50,
    )
    return str(handle.json_value())


def no_horizontal_overflow(page: Page) -> None:
    """The page never scrolls sideways."""
    sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]")
    assert sizes[0] <= sizes[1] and sizes[2] <= sizes[1], f"horizontal overflow: scrollWidth/innerWidth = {sizes}"


# --------------------------------------------------------------------------- accounts


@dataclass(frozen=True)
class Account:
    """A local account of the e2e app."""

    email: str
    password: str
    name: str = ""


def _auth_post(base_url: str, path: str, form: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=30) as client:
        return client.post(path, data=form)


def sign_up(base_url: str, account: Account) -> str:
    """Create a local account through the sign-up form's POST; returns its first session token."""
    form = {"name": account.name, "email": account.email, "password": account.password, "password2": account.password}
    response = _auth_post(base_url, "/auth/local/signup", form)
    token = response.cookies.get(SESSION_COOKIE)
    assert response.status_code == 303 and token, (
        f"sign-up of {account.email} failed: {response.status_code} -> {response.headers.get('location')}"
    )
    return token


def session_token(base_url: str, account: Account) -> str:
    """A fresh session of the account (POST /auth/local/login), as the browser would get it."""
    form = {"email": account.email, "password": account.password}
    response = _auth_post(base_url, "/auth/local/login", form)
    token = response.cookies.get(SESSION_COOKIE)
    assert response.status_code == 303 and token, (
        f"sign-in of {account.email} failed: {response.status_code} -> {response.headers.get('location')}"
    )
    return token


def add_session(context: BrowserContext, base_url: str, token: str) -> None:
    """Give a browser context a session cookie, as the sign-in response would have set it."""
    context.add_cookies(
        [{"name": SESSION_COOKIE, "value": token, "url": base_url, "httpOnly": True, "sameSite": "Lax"}]
    )


def new_account(base_url: str, prefix: str = "user", name: str = "", password: str = "") -> Account:
    """A fresh local account with a unique email (signed up through the form's POST)."""
    tag = unique(prefix)
    account = Account(email=f"{tag}@e2e.example", password=password or f"pw-{tag}-long", name=name or tag)
    sign_up(base_url, account)
    return account


def wait_login(page: Page) -> Page:
    """Wait until the login page is live (its on_load ran: the provider button comes from the server)."""
    expect(page).to_have_url(LOGIN_URL)
    expect(page.get_by_test_id(f"provider-{PROVIDER_ID}")).to_be_visible(timeout=20_000)
    return page


def fill_sign_in(page: Page, email: str, password: str) -> None:
    """Type an email and password into the login page's sign-in form and submit it."""
    form = page.get_by_test_id("signin-form")
    form.locator('input[name="email"]').fill(email)  # by name: the labels follow the interface language
    form.locator('input[name="password"]').fill(password)
    form.get_by_test_id("sign-in").click()


def open_user_menu(page: Page) -> Locator:
    """Open the header's account menu; returns the menu."""
    page.get_by_test_id("user-menu").click()
    menu = page.get_by_role("menu")
    expect(menu).to_be_visible()
    return menu


def open_settings(page: Page) -> Locator:
    """Open the header's settings popover (theme, language, send key, shortcuts); returns it."""
    page.get_by_test_id("settings-menu").click()
    panel = page.get_by_role("dialog").filter(has=page.get_by_test_id("theme-switch"))
    expect(panel).to_be_visible()
    return panel


def pick_language(page: Page, name: str) -> None:
    """Switch the interface language from the settings popover ("English", "Русский")."""
    panel = open_settings(page)
    panel.get_by_test_id("language").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")
