"""A chat of 2,000 messages: it opens on its newest messages, older ones load while scrolling up without
the view jumping (also while the reader keeps scrolling as a page goes in), every message once and in
order, and a new answer streams into it, is saved and is there after a reload."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from playwright.sync_api import Page, expect
from sqlmodel import select

from rubin_app.models import Conversation, Message, MessageRole, MessageStatus, User
from rubin_app.services.db import dispose_all, session_scope
from tests.sealed import app_keys

from .conftest import AppServer
from .helpers import Account, answers, ask, body, expected, last_answer, open_app, unique, wait_live

TOTAL = 2000
OPENED = 16  # messages a chat opens with (state/chat OPEN_PAGE)
PAGE = 50  # messages per older page (state/chat/common.py PAGE_SIZE)


def question(i: int) -> str:
    return f"Question {i:04d} about long chats"


def answer(i: int) -> str:
    return f"Answer {i:04d}: **bold** words and a list\n\n- one\n- two"


def seed_long_chat(app_server: AppServer, email: str, total: int = TOTAL) -> str:
    """Write a conversation of `total` messages for the account straight into the app's database."""
    url = app_server.env["DATABASE_URL"].replace("sqlite://", "sqlite+aiosqlite://", 1)

    async def main() -> str:
        try:
            async with session_scope(url) as session:
                user = (await session.exec(select(User).where(User.email == email))).one()
                conversation = Conversation(user_id=user.id, title="A very long chat", model="standin-model")
                session.add(conversation)
                await session.flush()
                session.add_all(
                    Message(
                        conversation_id=conversation.id,
                        user_id=user.id,
                        role=MessageRole.user if i % 2 == 0 else MessageRole.assistant,
                        content=question(i) if i % 2 == 0 else answer(i),
                        status=MessageStatus.complete,
                        model="" if i % 2 == 0 else "standin-model",
                    )
                    for i in range(total)
                )
                return conversation.id
        finally:
            await dispose_all()

    # Playwright's sync API runs an event loop in this thread: seed from a thread of our own, sealing the
    # messages with the app's own key (its DATA_DIR's key file), as the app would.
    with app_keys(app_server.env["DATA_DIR"]), ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def top_in_box(page: Page, text: str) -> float:
    """Where the user message with this text is, relative to the top of the scroll box (px)."""
    return page.evaluate(
        """(text) => {
            const box = document.getElementById('rubin-scroll');
            const el = [...box.querySelectorAll('[data-testid=user-message]')].find(e => e.textContent.includes(text));
            return el.getBoundingClientRect().top - box.getBoundingClientRect().top;
        }""",
        text,
    )


def scroll_to_top(page: Page, text: str = "Question") -> float:
    """Scroll the chat to its top and return where the message `text` was right then (before any load).

    A wheel turn first, as a reader does (it also ends the app's keeping the chat at the bottom while it
    opens), then straight to the top.
    """
    box = page.locator("#rubin-scroll").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -100)
    return page.evaluate(
        """(text) => {
            const box = document.getElementById('rubin-scroll');
            box.scrollTop = 0;
            const el = [...box.querySelectorAll('[data-testid=user-message]')].find(e => e.textContent.includes(text));
            return el.getBoundingClientRect().top - box.getBoundingClientRect().top;
        }""",
        text,
    )


def heads(total: int) -> list[str]:
    """What `in_order` reads in a seeded chat of `total` messages."""
    return [f"Question {i:04d}" if i % 2 == 0 else f"Answer {i:04d}" for i in range(total)]


def in_order(page: Page) -> list[str]:
    """The chat's messages as shown, top to bottom: "Question NNNN" / "Answer NNNN" (the seeded texts' heads)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=user-message], [data-testid=assistant-message]')]
              .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)
              .map(e => (e.textContent.match(/(Question|Answer) \\d{4}/) || ['?'])[0])"""
    )


def test_long_chat_pages_in_scrolls_back_and_streams(
    open_page: Callable[..., Page], make_account: Callable[..., Account], app_server: AppServer
) -> None:
    account = make_account("long")
    cid = seed_long_chat(app_server, account.email)
    page = open_page(signed_in=account)
    open_app(page, f"/c/{cid}")
    users = page.get_by_test_id("user-message")

    # The newest messages show, at the bottom of the chat; the oldest are not loaded yet.
    expect(users.last).to_contain_text(question(TOTAL - 2))
    expect(body(last_answer(page))).to_contain_text(f"Answer {TOTAL - 1:04d}")
    expect(last_answer(page)).to_be_in_viewport()
    expect(page.get_by_test_id("loading-older")).to_have_count(1)
    expect(page.get_by_text(question(0), exact=True)).to_have_count(0)
    expect(users).to_have_count(OPENED // 2)  # the newest page (its last exchange is drawn first, then the rest)
    shown = OPENED // 2

    # Scrolling up brings the previous page in above, and the message at the top stays where it was.
    oldest = question(TOTAL - OPENED)  # the oldest message of the newest page: at the top of the chat
    expect(users.first).to_contain_text(oldest)
    before = scroll_to_top(page, oldest)
    expect(users).to_have_count(shown + PAGE // 2, timeout=15_000)
    page.wait_for_timeout(1000)  # also once the messages near the view are drawn for real
    assert abs(top_in_box(page, oldest) - before) <= 2, "the view jumped when older messages came in"
    assert page.evaluate("() => document.getElementById('rubin-scroll').scrollTop") > 0

    # ...and so on, page by page, up to the very first message; then there is nothing more to load.
    for _ in range(TOTAL // 25):
        if page.get_by_test_id("loading-older").count() == 0:
            break
        count = users.count()
        scroll_to_top(page)
        expect(users).not_to_have_count(count, timeout=15_000)
    expect(page.get_by_test_id("loading-older")).to_have_count(0)
    expect(users).to_have_count(TOTAL // 2)
    expect(answers(page)).to_have_count(TOTAL // 2)
    scroll_to_top(page)
    expect(users.filter(has_text=question(0))).to_be_in_viewport()
    # Every message once, in order, across the page boundaries (and the slices pages go in by) too.
    assert in_order(page) == heads(TOTAL)
    tops = page.evaluate(
        """(names) => names.map(n => [...document.querySelectorAll('[data-testid=user-message]')]
              .find(e => e.textContent.includes(n)).getBoundingClientRect().top)""",
        [question(i) for i in (0, 2, 48, 50, 52, 98, 100, 1948, 1950, 1998)],
    )
    assert tops == sorted(tops) and len(set(tops)) == len(tops), tops

    # A new answer streams into the long chat and is saved: it is there after a reload.
    text = unique("longchat")
    ask(page, text)
    expect(body(last_answer(page))).to_have_text(expected(text))
    expect(last_answer(page)).to_be_in_viewport()

    page.reload()
    wait_live(page)
    expect(users.last).to_contain_text(text)
    expect(body(last_answer(page))).to_have_text(expected(text))
    expect(last_answer(page)).to_have_attribute("data-status", "complete")
    expect(users).to_have_count(OPENED // 2)  # the newest page again (drawn newest first: wait for all of it)
    expect(users.nth(OPENED // 2 - 2)).to_contain_text(question(TOTAL - 2))
    expect(page.get_by_test_id("loading-older")).to_have_count(1)  # paged again: only the newest are loaded


# Each frame, where the message `text` is relative to the top of the scroll box (px), for `ms` after a
# scroll to the top (the reader's anchor while an older page goes in, slice by slice).
WATCH_JS = """([text, ms]) => new Promise((done) => {
    const box = document.getElementById('rubin-scroll');
    const find = () => [...box.querySelectorAll('[data-testid=user-message]')].find(e => e.textContent.includes(text));
    const where = () => find().getBoundingClientRect().top - box.getBoundingClientRect().top;
    box.dispatchEvent(new WheelEvent('wheel', {bubbles: true}));
    box.scrollTop = 0;
    const seen = [where()], t0 = performance.now();
    (function frame() {
        seen.push(where());
        if (performance.now() - t0 < ms) requestAnimationFrame(frame);
        else done(seen);
    })();
})"""


def test_the_view_holds_still_in_every_frame_while_a_page_goes_in(
    open_page: Callable[..., Page], make_account: Callable[..., Account], app_server: AppServer
) -> None:
    account = make_account("holdstill")
    total = OPENED + 2 * PAGE
    cid = seed_long_chat(app_server, account.email, total)
    page = open_page(signed_in=account)
    open_app(page, f"/c/{cid}")
    users = page.get_by_test_id("user-message")
    expect(body(last_answer(page))).to_contain_text(f"Answer {total - 1:04d}")
    expect(users).to_have_count(OPENED // 2)
    page.wait_for_timeout(2500)  # the opening's keeping to the bottom is over

    for n, (oldest, count) in enumerate(
        (
            (question(total - OPENED), OPENED // 2 + PAGE // 2),
            (question(total - OPENED - PAGE), total // 2),
        )
    ):
        seen = page.evaluate(WATCH_JS, [oldest, 2000])
        expect(users).to_have_count(count)
        assert max(seen) - min(seen) <= 2, f"the message the reader was at moved while page {n + 1} went in: {seen}"
    expect(page.get_by_test_id("loading-older")).to_have_count(0)
    assert in_order(page) == heads(total)
