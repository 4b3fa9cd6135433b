"""A chat open in the browser shows an answer started elsewhere as it streams: by a program through the REST API
(the key made in the account page) or by the same user in another tab."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import httpx
from playwright.sync_api import Page, expect

from tests.fakes.localai_standin import StandIn

from .helpers import Account, chat_id, expected, open_app, send, unique, wait_live


def _key_from_account_page(page: Page) -> str:
    page.goto("/account")
    page.get_by_test_id("key-name").fill("live test")
    page.get_by_test_id("create-key").click()
    expect(page.get_by_test_id("new-key")).to_have_text(re.compile(r"^rk-"))
    return page.get_by_test_id("new-key").inner_text().strip()


def test_an_answer_sent_through_the_api_streams_into_the_open_chat(
    open_page: Callable[..., Page], make_account: Callable[..., Account], standin: StandIn, base_url: str
) -> None:
    account = make_account("live")
    page = open_page(account)
    key = _key_from_account_page(page)
    open_app(page)
    wait_live(page)
    first = unique("first question")
    send(page, first)
    expect(page.get_by_test_id("assistant-message").last).to_have_attribute("data-status", "complete")
    cid = chat_id(page)

    standin.config.token_rate = 20  # slow enough to be seen streaming
    question = unique("[[tokens=40]] from a script")
    sent = threading.Thread(
        target=lambda: httpx.post(
            f"{base_url}/api/v1/conversations/{cid}/messages",
            json={"content": question, "stream": False},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
    )
    sent.start()
    answer = page.get_by_test_id("assistant-message").last
    expect(page.get_by_test_id("user-message").last).to_contain_text(question.split("]] ")[1])
    expect(answer).to_have_attribute("data-status", "streaming")  # seen while it streams, not after a reload
    expect(answer).to_have_attribute("data-status", "complete", timeout=20_000)
    expect(answer).to_contain_text(expected(question, tokens=40)[:40])
    sent.join(timeout=30)
