"""History survives reloads; the sidebar renames, filters and deletes chats."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .helpers import (
    RECORD_FRAMES,
    answers,
    ask,
    body,
    chat_id,
    chat_item,
    expected,
    open_app,
    sidebar_link,
    unique,
    wait_live,
)


def test_reload_keeps_history_and_sidebar_manages_chats(page: Page) -> None:
    first, second = unique("first"), unique("second")
    open_app(page)
    ask(page, first)
    cid = chat_id(page)
    ask(page, second)
    assert chat_id(page) == cid

    page.reload()
    wait_live(page)
    users = page.get_by_test_id("user-message")
    expect(users).to_have_count(2)
    expect(users.nth(0)).to_contain_text(first)
    expect(users.nth(1)).to_contain_text(second)
    expect(answers(page)).to_have_count(2)
    expect(body(answers(page).nth(0))).to_have_text(expected(first))
    expect(body(answers(page).nth(1))).to_have_text(expected(second))
    for i in range(2):
        expect(answers(page).nth(i)).to_have_attribute("data-status", "complete")
    # Order on the page: question, answer, question, answer.
    order = page.locator('[data-testid="user-message"], [data-testid="assistant-message"]').evaluate_all(
        "els => els.map(e => e.dataset.testid)"
    )
    assert order == ["user-message", "assistant-message"] * 2
    expect(sidebar_link(page, cid)).to_have_text(first)
    expect(page.get_by_test_id("chat-title")).to_have_text(first)

    # Rename from the chat's menu.
    new_title = unique("Renamed ")
    chat_item(page, cid).get_by_test_id("chat-menu").click()
    page.get_by_test_id("rename").click()
    field = page.get_by_test_id("rename-input")
    expect(field).to_have_value(first)
    field.fill(new_title)
    page.get_by_test_id("rename-save").click()
    expect(field).to_be_hidden()
    expect(sidebar_link(page, cid)).to_have_text(new_title)
    expect(page.get_by_test_id("chat-title")).to_have_text(new_title)
    page.reload()
    wait_live(page)
    expect(sidebar_link(page, cid)).to_have_text(new_title)
    expect(page.get_by_test_id("chat-title")).to_have_text(new_title)

    # A second chat, to see the filter pick one of them.
    page.get_by_test_id("new-chat").click()
    expect(page).to_have_url(re.compile(r"^http://[^/]+/$"))
    expect(page.get_by_test_id("user-message")).to_have_count(0)
    other = unique("other")
    ask(page, other)
    other_cid = chat_id(page)
    sidebar = page.get_by_test_id("sidebar")
    expect(sidebar_link(page, other_cid)).to_be_visible()
    expect(sidebar_link(page, cid)).to_be_visible()

    search = page.get_by_test_id("chat-filter")
    search.fill(new_title.split()[1].upper())  # case-insensitive substring of the title
    expect(sidebar.get_by_test_id("chat-item")).to_have_count(1)
    expect(sidebar_link(page, cid)).to_be_visible()
    search.fill(unique("nomatch"))
    expect(sidebar.get_by_test_id("chat-item")).to_have_count(0)
    expect(sidebar).to_contain_text("No chats yet")
    search.fill("")
    expect(sidebar_link(page, cid)).to_be_visible()
    expect(sidebar_link(page, other_cid)).to_be_visible()

    # Delete (with confirmation) the chat that is open.
    sidebar_link(page, cid).click()
    expect(page).to_have_url(re.compile(f"/c/{cid}$"))
    expect(page.get_by_test_id("chat-title")).to_have_text(new_title)
    chat_item(page, cid).get_by_test_id("chat-menu").click()
    page.get_by_test_id("delete").click()
    confirm = page.get_by_test_id("confirm-delete")
    expect(confirm).to_be_visible()
    expect(page.get_by_role("alertdialog")).to_contain_text("Delete this chat?")
    confirm.click()
    expect(confirm).to_be_hidden()
    expect(sidebar_link(page, cid)).to_have_count(0)
    expect(sidebar_link(page, other_cid)).to_be_visible()
    expect(page).to_have_url(re.compile(r"^http://[^/]+/$"))  # the deleted chat was open: back to a new chat

    open_app(page, f"/c/{cid}")
    expect(page.get_by_test_id("not-found")).to_be_visible()
    expect(page.get_by_test_id("not-found")).to_contain_text("Chat not found")
    expect(page.get_by_test_id("user-message")).to_have_count(0)


# Every question text the page ever put in the DOM (a MutationObserver from the document's start: a chat drawn for
# one frame counts too).
SEEN = """
window.__asked = new Set();
new MutationObserver(() => {
  document.querySelectorAll('[data-testid="user-message"]').forEach((e) => window.__asked.add(e.textContent.trim()));
}).observe(document, { childList: true, subtree: true, characterData: true });
"""


def test_opening_a_chat_by_its_address_never_sends_or_shows_the_chat_the_tab_showed_before(page: Page) -> None:
    there, here = unique("there"), unique("here")
    open_app(page)
    ask(page, there)
    other = chat_id(page)
    open_app(page, "/")
    ask(page, here)  # the tab now shows this chat: its state, kept across loads, holds it
    page.add_init_script(SEEN)
    page.add_init_script(RECORD_FRAMES)
    open_app(page, f"/c/{other}")  # a page load of the same tab (same tab token), on the other chat
    expect(page.get_by_test_id("user-message")).to_have_count(1)
    expect(page.get_by_test_id("user-message")).to_contain_text(there)
    seen, frames = page.evaluate("[...window.__asked]"), page.evaluate("window.__frames")
    assert any(there in s for s in seen), "the recorder saw nothing: the check below would prove nothing"
    # A message view names its text as "content" (the sidebar's list names both chats by title: that is right).
    assert any(f'"content":"{there}"' in f for f in frames), "no frame brought the chat: this would prove nothing"
    assert not any(here in s for s in seen), f"the page drew the chat it showed before first: {seen}"
    assert not any(f'"content":"{here}"' in f for f in frames), "the page load sent the chat the tab showed before"
