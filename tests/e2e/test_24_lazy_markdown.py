"""The Markdown renderer is loaded when a message needs it, not with the new-chat page (docs/performance.md)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .helpers import ask, body, chat_id, open_app, unique

RENDERER = "() => performance.getEntriesByType('resource').some((e) => /\\/assets\\/markdown-[^/]*\\.js$/.test(e.name))"


def test_markdown_comes_when_a_message_needs_it_and_renders_on_opening(page: Page) -> None:
    open_app(page)
    page.wait_for_load_state("networkidle")
    assert page.evaluate(RENDERER) is False  # the new-chat page shows no message: no renderer

    word = unique("lazy")
    answer = ask(page, f"[[reply=**bold {word}**\n\n| a | b |\n|---|---|\n| 1 | 2 |]]")
    expect(body(answer).locator("strong")).to_have_text(f"bold {word}")
    expect(body(answer).locator("table td").first).to_have_text("1")
    assert page.evaluate(RENDERER) is True

    # A chat opened by its address: the renderer is fetched while the page connects; the answer shows as Markdown.
    page.goto(f"/c/{chat_id(page)}")
    answer = page.get_by_test_id("assistant-message").last
    expect(body(answer).locator("strong")).to_have_text(f"bold {word}")
    expect(page.locator(".rubin-md-plain")).to_have_count(0)
