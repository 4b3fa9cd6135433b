"""Streamed text rides the tab's own websocket as thin `rs` operations (state/stream_channel.py, assets/stream.js).

What a user checks: the answer on the page is exactly the model's text — Russian letters and emoji split across
pieces included — also when the websocket drops mid-answer or the page is reloaded (it goes on from where the text
was: nothing doubled, nothing missing), and a finished answer stays whole when the next one pushes it up the chat.
What crosses the websocket: the answer's text once (the saved answer's update does not bring it again), and the
question once (the page shows the exchange it sends from its own copy until it is saved).
"""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.fakes.localai_standin import StandIn

from .helpers import RECORD_FRAMES, answer_requests, answers, body, open_app, send, unique, wait_status, wait_until

# Four code points a piece (the stand-in's reply pieces): 🦔 and the family (a ZWJ sequence) are split across pieces.
REPLY = "Привет, мир. Ёжик 🦔 несёт яблоко 🍎 и грушу 🍐, семья 👨‍👩‍👧 ждёт. " * 5 + "Конец ответа."

# Every text the streaming answer showed (each animation frame), and every websocket frame received.
RECORDER = """
(() => {
  window.__shown = [];
  (function watch() {
    const live = document.querySelector('[data-testid="streaming-answer"] .rubin-md');
    if (live) {
      const text = live.innerText.trim();
      if (text && window.__shown[window.__shown.length - 1] !== text) window.__shown.push(text);
    }
    requestAnimationFrame(watch);
  })();
})();
"""


def _question(word: str, rate: int = 12) -> str:
    # The reply as JSON escapes: the question itself then holds none of the answer's letters.
    return f"{word} [[reply_json={json.dumps(REPLY)[1:-1]}]] [[rate={rate}]]"


def _shown_prefixes(page: Page) -> None:
    shown = page.evaluate("window.__shown")
    assert shown, "the answer was never shown while it streamed"
    wrong = [s for s in shown if not REPLY.strip().startswith(s)]
    assert not wrong, f"the page showed text that is not the answer's start (doubled or lost): {wrong[:2]!r}"


def test_a_dropped_websocket_mid_answer_continues_exactly(page: Page, standin: StandIn) -> None:
    open_app(page)
    page.evaluate(RECORDER)
    send(page, _question(unique("drop")))
    live = page.get_by_test_id("streaming-answer").locator(".rubin-md")
    wait_until(lambda: len(live.inner_text()) > 40 if live.count() else False, what="the start of the answer")
    opened = page.evaluate("window.rubinStream.opened()")
    page.evaluate("window.rubinStream.socket().close()")  # the connection drops (a proxy, a network change)
    wait_until(lambda: page.evaluate("window.rubinStream.opened()") > opened, timeout=15, what="a reconnect")
    assert answer_requests(standin)[-1].outcome == "pending", "the answer ended before the reconnect: nothing tested"
    answer = wait_status(page, "complete", timeout=30_000)
    expect(body(answer)).to_have_text(REPLY.strip())
    _shown_prefixes(page)


def test_a_reload_mid_answer_shows_it_whole(page: Page, standin: StandIn) -> None:
    open_app(page)
    send(page, _question(unique("reload")))
    live = page.get_by_test_id("streaming-answer").locator(".rubin-md")
    wait_until(lambda: len(live.inner_text()) > 40 if live.count() else False, what="the start of the answer")
    page.reload()
    page.evaluate(RECORDER)
    assert answer_requests(standin)[-1].outcome == "pending", "the answer ended before the reload: nothing tested"
    answer = wait_status(page, "complete", timeout=30_000)
    expect(body(answer)).to_have_text(REPLY.strip())
    _shown_prefixes(page)


def test_the_text_crosses_once_and_stays_when_the_next_answer_comes(page: Page) -> None:
    page.add_init_script(RECORD_FRAMES)
    open_app(page)
    word = unique("once")
    send(page, _question(word, rate=200))
    first = wait_status(page, "complete")
    expect(body(first)).to_have_text(REPLY.strip())
    frames = page.evaluate("window.__frames")
    streamed = "".join(f for f in frames if f.startswith('42/_event,["rs"'))
    assert "Конец" in streamed and "Ёжик" in streamed, "the answer did not stream as rs operations"
    again = [f[:200] for f in frames if not f.startswith('42/_event,["rs"') and ("Ёжик" in f or "Конец" in f)]
    assert not again, f"the answer's text crossed the websocket a second time: {again}"
    # The question shows from the page's own copy while it is sent: it comes back once, in the saved exchange.
    assert len([f for f in frames if f'"content":"{word}' in f]) == 1, "the question was echoed before it was saved"
    nxt = unique("next")
    send(page, f"{nxt} [[tokens=12]] [[rate=20]]")
    expect(page.get_by_test_id("user-message").last).to_contain_text(nxt)  # shown at once, the answer streaming
    expect(page.get_by_test_id("streaming-answer")).to_have_count(1)
    wait_until(lambda: answers(page).count() == 2, what="the second answer")
    wait_status(page, "complete")
    expect(page.get_by_test_id("streaming-answer")).to_have_count(0)
    expect(body(answers(page).first)).to_have_text(REPLY.strip())  # now among the chat's finished messages
    expect(answers(page).first).to_have_attribute("data-status", "complete")
    expect(page.get_by_test_id("message-error")).to_have_count(0)
    expect(page.get_by_test_id("user-message")).to_have_count(2)
    page.reload()  # the saved chat says the same
    expect(body(answers(page).first)).to_have_text(REPLY.strip(), timeout=15_000)
    expect(answers(page)).to_have_count(2)
