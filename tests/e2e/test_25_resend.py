"""A question the connection took away is sent again by the page (assets/stream.js, services/send_keys.py).

What a user checks: they press Enter, the connection drops at that moment (a proxy, a worker that stops, a phone
changing networks), and still their question shows once and gets its whole answer, without typing it again,
whether the question never reached the server or reached it just before the socket went.
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.fakes.localai_standin import StandIn

from .helpers import ask, chat_id, expected, open_app, send, unique, wait_status, wait_until

# The next chat send frame: dropped with its socket ("lost"), or delivered just before the socket closes ("late").
CUT_NEXT_SEND = """
(mode) => {
  const proto = Object.getPrototypeOf(window.WebSocket.prototype); // the browser's own WebSocket
  const send = proto.send;
  window.__cut = 0;
  proto.send = function (data) {
    if (!window.__cut && typeof data === "string" && data.indexOf("chat____chat_state.send") !== -1) {
      window.__cut = 1;
      if (mode === "late") send.call(this, data);
      this.close();
      return;
    }
    return send.call(this, data);
  };
}
"""


def _cut_send_then_check(page: Page, standin: StandIn, mode: str, first: str | None) -> None:
    if first is not None:
        ask(page, first)
    cid = chat_id(page) if first is not None else ""
    opened = page.evaluate("window.rubinStream.opened()")
    page.evaluate(CUT_NEXT_SEND, mode)
    question = unique(f"cut{mode}")
    send(page, question)
    wait_until(lambda: page.evaluate("window.__cut") == 1, what="the send to be cut")
    wait_until(lambda: page.evaluate("window.rubinStream.opened()") > opened, timeout=20, what="a reconnect")
    answer = wait_status(page, "complete", timeout=30_000)
    expect(answer.locator(".rubin-md").first).to_have_text(expected(question))
    expect(page.get_by_test_id("composer")).to_have_value("")  # nothing to type again
    if cid:
        assert chat_id(page) == cid
    # Saved once: the reopened chat shows the question once, then its answer.
    page.reload()
    expect(page.get_by_test_id("user-message").filter(has_text=question)).to_have_count(1, timeout=20_000)
    expect(page.get_by_test_id("assistant-message").last).to_have_attribute("data-status", "complete")


def test_a_question_lost_with_its_connection_is_sent_again_and_answered(page: Page, standin: StandIn) -> None:
    open_app(page)
    _cut_send_then_check(page, standin, "lost", first=unique("before"))


def test_a_new_chats_first_question_lost_with_its_connection_makes_one_chat(page: Page, standin: StandIn) -> None:
    open_app(page)
    _cut_send_then_check(page, standin, "lost", first=None)
    chat_id(page)  # the address became the new chat's


def test_a_question_that_arrived_as_its_connection_closed_is_saved_once(page: Page, standin: StandIn) -> None:
    open_app(page)
    _cut_send_then_check(page, standin, "late", first=unique("before"))
