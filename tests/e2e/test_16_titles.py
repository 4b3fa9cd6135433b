"""Automatic titles (the default TITLE_MODE=llm): a model slow to write the title never holds up the chat."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from rubin_app.services.titles import title_from_text
from tests.fakes.localai_standin import StandIn

from .helpers import (
    answer_requests,
    ask,
    body,
    chat_id,
    last_answer,
    open_app,
    send,
    sidebar_link,
    unique,
    wait_status,
    wait_until,
)

TITLE_DELAY = 2  # seconds the stand-in adds to title requests (the e2e app gives LocalAI 3 s to answer)


def title_state(standin: StandIn) -> list[str]:
    """The outcome of every title request so far."""
    return [r.outcome for r in standin.records if r.title]


def test_a_slow_title_never_holds_up_the_chat(page: Page, standin: StandIn) -> None:
    word = unique("ruby")
    question = f"{word} why are rubies red [[reply=Rubies and {word}]] [[title_delay={TITLE_DELAY}]]"
    provisional = title_from_text(question)
    open_app(page)
    send(page, question)

    # The answer shows finished while the model is still writing the title...
    answer = wait_status(page, "complete")
    assert title_state(standin) == ["pending"], "the answer was shown finished only once the title was written"
    expect(body(answer)).to_have_text(f"Rubies and {word}")
    expect(page.get_by_test_id("send")).to_be_visible()
    # ... the new chat is listed, under the start of its first message for now ...
    cid = chat_id(page)
    expect(sidebar_link(page, cid)).to_have_text(provisional)
    expect(page.get_by_test_id("chat-title")).to_have_text(provisional)

    # ... and the next message goes out at once, not "Wait for the current answer to finish".
    follow_up = unique("next")
    send(page, follow_up)
    wait_until(lambda: len(answer_requests(standin)) == 2, timeout=5, what="the second question to reach LocalAI")
    assert title_state(standin) == ["pending"], "the second message was held until the title was written"
    expect(page.get_by_test_id("user-message")).to_have_count(2)
    expect(page.get_by_test_id("user-message").last).to_contain_text(follow_up)
    wait_status(page, "complete")
    expect(body(last_answer(page))).to_contain_text(f"Echo: {follow_up}")
    expect(page.get_by_text("Wait for the current answer")).to_have_count(0)

    # The model's title replaces the provisional one in the open tab, without a reload.
    wait_until(lambda: title_state(standin) == ["completed"], timeout=10, what="the title to be written")
    expect(sidebar_link(page, cid)).to_have_text(f"Rubies and {word}")
    expect(page.get_by_test_id("chat-title")).to_have_text(f"Rubies and {word}")
    page.reload()
    expect(sidebar_link(page, cid)).to_have_text(f"Rubies and {word}")
    expect(page.get_by_test_id("chat-title")).to_have_text(f"Rubies and {word}")
    expect(page.get_by_test_id("user-message")).to_have_count(2)


def test_a_new_chat_is_listed_while_its_first_answer_streams(page: Page, standin: StandIn) -> None:
    word = unique("listed")
    question = f"{word} [[tokens=60]] [[rate=15]]"
    open_app(page)
    send(page, question)
    cid = chat_id(page)  # the URL changes once the chat is saved, while the answer streams
    expect(sidebar_link(page, cid)).to_have_text(title_from_text(question))
    expect(last_answer(page)).to_have_attribute("data-status", "streaming")
    wait_status(page, "complete")
    ask(page, unique("again"))  # the chat goes on, listed once
    expect(sidebar_link(page, cid)).to_have_count(1)
