"""Restarting the app keeps every conversation and continues an answer the restart cut (runs last: it restarts the
shared server)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from .conftest import AppServer
from .helpers import ask, body, chat_id, expected, open_app, send, unique, wait_live, wait_partial, wait_status


def test_conversations_survive_an_app_restart(
    page: Page, open_page: Callable[..., Page], app_server: AppServer
) -> None:
    done = unique("kept")
    open_app(page)
    ask(page, done)
    done_cid = chat_id(page)

    # A second tab is in the middle of an answer when the server goes down.
    busy = open_page()
    word = unique("midway")
    open_app(busy)
    question = f"{word} [[tokens=150]] [[rate=15]]"
    send(busy, question)
    busy_cid = chat_id(busy)
    # Streamed for over 1 s: at least one periodic save (DB_FLUSH_SECONDS=0.5) has happened.
    wait_partial(busy, f"Echo: {word}", min_chars=len(f"Echo: {word}") + 120)

    app_server.restart()

    page.reload()
    wait_live(page)
    assert chat_id(page) == done_cid
    expect(page.get_by_test_id("user-message")).to_have_count(1)
    expect(page.get_by_test_id("user-message")).to_contain_text(done)
    answer = wait_status(page, "complete")
    expect(body(answer)).to_have_text(expected(done))
    expect(page.get_by_test_id("sidebar").locator(f'[href="/c/{busy_cid}"]')).to_be_visible()

    # The answer cut by the restart goes on where it was: the stopping server saved it as it was (or, if the
    # worker died instead, its last periodic save remains) and the new start continued it (services/recovery.py).
    # The tab, left alone, reconnects by itself, follows the rest live and ends with the one whole answer.
    assert chat_id(busy) == busy_cid
    answer = wait_status(busy, "complete", timeout=40_000)
    expect(body(answer)).to_have_text(expected(question))
    expect(answer.get_by_test_id("message-error")).to_have_count(0)
