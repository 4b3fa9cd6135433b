"""LocalAI failures are explained in the answer; Retry recovers."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.fakes.localai_standin import StandIn

from .helpers import answers, ask, body, expected, last_answer, open_app, pieces, unique, wait_status, wait_until


def test_overloaded_server_is_explained(page: Page, standin: StandIn) -> None:
    open_app(page)
    answer = ask(page, f"{unique('busy')} [[fault=http503]]", status="error")
    error = answer.get_by_test_id("message-error")
    expect(error).to_contain_text("Failed")
    expect(error).to_contain_text("overloaded")
    expect(body(answer)).to_have_text("")
    expect(answer.get_by_test_id("retry")).to_be_visible()
    expect(page.get_by_test_id("send")).to_be_visible()
    assert [r.status for r in standin.records] == [503]


def test_error_frame_mid_answer_keeps_partial_text(page: Page) -> None:
    question = f"{unique('frame')} [[fault=error_frame]] [[tokens=20]]"
    open_app(page)
    answer = ask(page, question, status="interrupted")
    expect(body(answer)).to_have_text("".join(pieces(question)[:10]))
    error = answer.get_by_test_id("message-error")
    expect(error).to_contain_text("Interrupted")
    expect(error).to_contain_text("LocalAI reported an error while answering.")
    expect(answer.get_by_test_id("retry")).to_be_visible()


def test_a_dropped_connection_is_continued_into_one_whole_answer(page: Page, standin: StandIn) -> None:
    question = f"{unique('drop')} [[fault=drop]] [[tokens=20]]"
    open_app(page)
    answer = ask(page, question)  # LocalAI's stream broke half way; the answer was asked again from there
    expect(body(answer)).to_have_text(expected(question))
    expect(answer.get_by_test_id("message-error")).to_have_count(0)
    assert [r.outcome for r in standin.records if not r.title] == ["dropped", "completed"]


def test_a_connection_that_keeps_dropping_keeps_the_partial_text(page: Page) -> None:
    question = f"{unique('drop')} [[fault=drop]] [[refault]] [[tokens=20]]"
    open_app(page)
    answer = ask(page, question, status="interrupted")
    assert expected(question).startswith(body(answer).inner_text().strip())
    expect(answer.get_by_test_id("message-error")).to_contain_text("The connection to LocalAI was lost mid-answer.")


def test_retry_after_a_server_error(page: Page, standin: StandIn) -> None:
    question = unique("retry")
    standin.config.fault = "http500"
    open_app(page)
    answer = ask(page, question, status="error")
    expect(answer.get_by_test_id("message-error")).to_contain_text("LocalAI failed with a server error.")

    standin.config.fault = "none"
    answer.get_by_test_id("retry").click()
    answer = wait_status(page, "complete")
    expect(body(answer)).to_have_text(expected(question))
    expect(answer.get_by_test_id("message-error")).to_have_count(0)
    expect(answer.get_by_test_id("regenerate")).to_be_visible()
    expect(answers(page)).to_have_count(1)
    expect(page.get_by_test_id("user-message")).to_have_count(1)
    assert [r.status for r in standin.records] == [500, 200]


def test_silent_server_times_out(page: Page, standin: StandIn) -> None:
    standin.config.fault = "hang_before"  # accepts the request, never answers (LLM_READ_TIMEOUT=3 in the app)
    open_app(page)
    answer = ask(page, unique("silent"), status="error")
    expect(answer.get_by_test_id("message-error")).to_contain_text("LocalAI took too long to answer.")
    wait_until(lambda: standin.cancelled == 1, what="the app to give up the hung request")
    expect(last_answer(page).get_by_test_id("retry")).to_be_visible()
