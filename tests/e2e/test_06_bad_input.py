"""The composer: nothing is sent by mistake, and a rejected message stays in the box."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.fakes.localai_standin import StandIn

from .helpers import MAX_MESSAGE_CHARS, answer_requests, open_app, unique, wait_status

HOME = re.compile(r"^http://[^/]+/$")


def test_empty_message_is_not_sent(page: Page, standin: StandIn) -> None:
    open_app(page)
    box = page.get_by_test_id("composer")
    box.press("Enter")
    box.fill("   \n  ")
    box.press("Enter")
    expect(page.get_by_test_id("composer-error")).to_have_text("Type a message first.")
    expect(page.get_by_test_id("user-message")).to_have_count(0)
    expect(page).to_have_url(HOME)
    expect(box).to_be_focused()
    assert standin.requests == 0


def test_too_long_message_is_refused_and_kept(page: Page, standin: StandIn) -> None:
    open_app(page)
    chats_before = page.get_by_test_id("sidebar").get_by_test_id("chat-item").count()
    text = "x" * (MAX_MESSAGE_CHARS + 1)
    box = page.get_by_test_id("composer")
    box.fill(text)
    box.press("Enter")
    error = page.get_by_test_id("composer-error")
    expect(error).to_have_text(
        f"The message is too long: {MAX_MESSAGE_CHARS + 1} characters, the limit is {MAX_MESSAGE_CHARS}."
    )
    expect(box).to_have_value(text)
    expect(page.get_by_test_id("user-message")).to_have_count(0)
    expect(page).to_have_url(HOME)
    expect(page.get_by_test_id("sidebar").get_by_test_id("chat-item")).to_have_count(chats_before)
    assert standin.requests == 0

    # Shortened to the limit, it goes through and the error disappears.
    box.fill(text[:MAX_MESSAGE_CHARS])
    box.press("Enter")
    expect(page.get_by_test_id("user-message")).to_have_count(1)
    expect(error).to_have_count(0)
    expect(box).to_have_value("")
    wait_status(page, "complete")


def test_shift_enter_adds_a_line(page: Page, standin: StandIn) -> None:
    first, second = unique("line one "), unique("line two ")
    open_app(page)
    box = page.get_by_test_id("composer")
    box.click()
    box.press_sequentially(first)
    box.press("Shift+Enter")
    box.press_sequentially(second)
    expect(box).to_have_value(f"{first}\n{second}")
    expect(page.get_by_test_id("user-message")).to_have_count(0)
    assert standin.requests == 0

    # Enter sends both lines as one message, line break kept.
    box.press("Enter")
    question = page.get_by_test_id("user-message")
    expect(question).to_have_count(1)
    expect(question).to_contain_text(first)
    assert f"{first}\n{second}" in question.inner_text()
    wait_status(page, "complete")
    assert len(answer_requests(standin)) == 1


def test_model_gone_from_localai_is_explained(page: Page, standin: StandIn) -> None:
    """The model vanished from LocalAI after the page loaded: a clear message, the question is kept."""
    open_app(page)
    expect(page.get_by_test_id("model-select")).to_contain_text("standin-model")
    standin.config.models = ["another-model"]
    text = unique("to a vanished model ")
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("composer").press("Enter")
    answer = wait_status(page, "error")
    expect(answer.get_by_test_id("message-error")).to_contain_text("LocalAI does not serve this model")
    expect(page.get_by_test_id("user-message")).to_have_text(re.compile(re.escape(text)))
    page.reload()
    expect(page.get_by_test_id("user-message")).to_have_text(re.compile(re.escape(text)))
    expect(page.get_by_test_id("retry")).to_be_visible()
