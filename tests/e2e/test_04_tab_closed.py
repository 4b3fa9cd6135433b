"""Closing the tab does not lose the answer: it keeps generating on the server."""

from __future__ import annotations

import time

from playwright.sync_api import Page, expect

from tests.fakes.localai_standin import REASONING as REASONING_PIECES
from tests.fakes.localai_standin import StandIn

from .helpers import (
    answer_requests,
    body,
    chat_id,
    expected,
    last_answer,
    open_app,
    send,
    unique,
    wait_partial,
    wait_status,
    wait_until,
)

REASONING = "".join(REASONING_PIECES)


def _start_and_close(page: Page, word: str, question: str) -> str:
    open_app(page)
    send(page, question)
    cid = chat_id(page)
    wait_partial(page, f"Echo: {word}", min_chars=len(f"Echo: {word}") + 10)
    page.close()
    return cid


def test_reopen_while_the_answer_is_still_arriving(page: Page, standin: StandIn) -> None:
    word = unique("closed")
    question = f"{word} [[reasoning]] [[tokens=60]] [[rate=15]]"
    full = expected(question)
    context = page.context
    cid = _start_and_close(page, word, question)
    time.sleep(1.0)  # the tab stays closed for a while, as a user would
    assert standin.records[-1].outcome == "pending", "the answer must keep generating with no tab open"

    page = context.new_page()
    open_app(page, f"/c/{cid}")
    expect(page.get_by_test_id("user-message")).to_contain_text(question)
    state = page.wait_for_function(
        """() => {
            const live = document.querySelector('[data-testid="streaming-answer"] .rubin-md');
            if (live && live.innerText.trim()) return {live: live.innerText.trim()};
            const done = document.querySelector('[data-testid="assistant-message"][data-status="complete"]');
            return done ? {done: true} : false;
        }""",
        polling=50,
    ).json_value()
    if "live" in state:  # still arriving: the tab shows the start of the real answer, and it keeps growing
        seen = state["live"]
        assert full.startswith(seen), seen
        more = wait_partial(page, f"Echo: {word}", min_chars=len(seen) + 15)
        assert full.startswith(more), f"text went missing while following the answer: {more!r}"
        thinking = page.get_by_test_id("streaming-answer").locator("details")
        assert thinking.text_content() == f"Reasoning{REASONING}", "reasoning shown twice or cut after reopening"
    answer = wait_status(page, "complete")
    expect(body(answer)).to_have_text(full)
    assert answer.locator("details").text_content() == f"Reasoning{REASONING}"
    assert [r.outcome for r in answer_requests(standin)] == ["completed"]


def test_reopen_after_the_answer_ended(page: Page, standin: StandIn) -> None:
    word = unique("later")
    question = f"{word} [[tokens=60]] [[rate=15]]"
    context = page.context
    cid = _start_and_close(page, word, question)
    wait_until(
        lambda: [r.outcome for r in answer_requests(standin)] == ["completed"],
        timeout=15,
        what="the answer to finish with no tab open",
    )

    page = context.new_page()
    open_app(page, f"/c/{cid}")
    expect(last_answer(page)).to_have_attribute("data-status", "complete")
    expect(page.get_by_test_id("streaming-answer")).to_have_count(0)
    expect(body(last_answer(page))).to_have_text(expected(question))
