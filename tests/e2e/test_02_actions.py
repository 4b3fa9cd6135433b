"""Stop, regenerate and edit an answer."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.fakes.localai_standin import StandIn, last_user_text

from .helpers import (
    answer_requests,
    answers,
    ask,
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


def test_stop_keeps_partial_answer_and_closes_upstream(page: Page, standin: StandIn) -> None:
    word = unique("stop")
    question = f"{word} [[tokens=400]] [[rate=15]]"
    full = expected(question)
    open_app(page)
    send(page, question)
    wait_partial(page, f"Echo: {word}", min_chars=len(f"Echo: {word}") + 25)
    assert standin.cancelled == 0

    page.get_by_test_id("stop").click()

    answer = wait_status(page, "interrupted")
    kept = body(answer).inner_text().strip()
    assert kept.startswith(f"Echo: {word} lorem"), kept
    assert full.startswith(kept) and len(kept) < len(full) / 2, kept
    expect(answer.get_by_test_id("message-error")).to_contain_text("Interrupted")
    expect(answer.get_by_test_id("message-error")).to_contain_text("You stopped this answer.")
    expect(answer.get_by_test_id("retry")).to_be_visible()
    expect(page.get_by_test_id("send")).to_be_visible()
    # The app really closed the request to LocalAI (the stand-in saw the disconnect).
    wait_until(lambda: standin.cancelled == 1, what="the stand-in to see the request cancelled")
    assert standin.records[-1].outcome == "cancelled"
    assert standin.records[-1].pieces_sent < 400

    # The partial answer and its status were saved.
    cid = chat_id(page)
    page.reload()
    answer = wait_status(page, "interrupted")
    expect(body(answer)).to_have_text(kept)
    expect(answer.get_by_test_id("message-error")).to_contain_text("You stopped this answer.")
    assert chat_id(page) == cid


def test_regenerate_replaces_the_answer(page: Page, standin: StandIn) -> None:
    question = unique("regen")
    open_app(page)
    ask(page, question)
    expect(body(last_answer(page))).to_have_text(expected(question))
    assert len(answer_requests(standin)) == 1

    # The stand-in now answers longer, so the new answer is visibly different.
    standin.config.tokens = 30
    standin.config.token_rate = 15
    last_answer(page).get_by_test_id("regenerate").click()
    expect(page.get_by_test_id("streaming-answer")).to_be_visible()
    answer = wait_status(page, "complete")
    expect(body(answer)).to_have_text(expected(question, tokens=30))
    expect(answers(page)).to_have_count(1)
    expect(page.get_by_test_id("user-message")).to_have_count(1)
    # The same question went to LocalAI a second time (and nothing of the old answer with it).
    assert len(answer_requests(standin)) == 2
    sent = standin.last_answer_json or {}
    assert last_user_text(sent["messages"]) == question
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]

    page.reload()
    expect(body(last_answer(page))).to_have_text(expected(question, tokens=30))
    expect(answers(page)).to_have_count(1)


def test_edit_last_message_resends_it(page: Page, standin: StandIn) -> None:
    first, second = unique("before"), unique("after")
    open_app(page)
    ask(page, first)
    page.get_by_test_id("user-message").last.get_by_test_id("edit").click()
    editor = page.get_by_test_id("edit-input")
    expect(editor).to_be_visible()
    expect(editor).to_have_value(first)
    editor.fill(second)
    page.get_by_test_id("edit-save").click()
    expect(editor).to_be_hidden()

    answer = wait_status(page, "complete")
    expect(page.get_by_test_id("user-message")).to_have_count(1)
    expect(page.get_by_test_id("user-message")).to_contain_text(second)
    expect(page.get_by_test_id("user-message")).not_to_contain_text(first)
    expect(body(answer)).to_have_text(expected(second))
    expect(answers(page)).to_have_count(1)
    assert last_user_text((standin.last_answer_json or {})["messages"]) == second

    page.reload()
    expect(page.get_by_test_id("user-message")).to_have_count(1)
    expect(page.get_by_test_id("user-message")).to_contain_text(second)
    expect(body(last_answer(page))).to_have_text(expected(second))
