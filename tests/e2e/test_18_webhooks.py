"""Webhooks from the account page: an endpoint added in the UI (its secret shown once) receives a chat's events,
signed; the delivery log shows them; a test event; a private address is refused with a clear message."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.fakes.webhook_receiver import ThreadedReceiver

from .helpers import Account, expected, open_app, send, unique, wait_live


@pytest.fixture
def receiver() -> Iterator[ThreadedReceiver]:
    server = ThreadedReceiver("127.0.0.2")  # the one private address the e2e app may call
    yield server
    server.close()


def test_an_endpoint_added_in_the_account_page_receives_signed_chat_events(
    open_page: Callable[..., Page], make_account: Callable[..., Account], receiver: ThreadedReceiver
) -> None:
    page = open_page(make_account("hooks"))
    page.goto("/account")
    hooks = page.get_by_test_id("webhooks-WebhooksState")
    expect(hooks).to_be_visible()

    hooks.get_by_test_id("hook-url").fill("http://127.0.0.1:9/hook")  # loopback: refused
    hooks.get_by_test_id("hook-add").click()
    expect(page.get_by_test_id("hooks-error")).to_contain_text(re.compile("loopback|private|not public", re.I))
    expect(hooks.get_by_test_id("hook-row")).to_have_count(0)

    hooks.get_by_test_id("hook-url").fill(receiver.url)
    hooks.get_by_role("checkbox", name="message.completed").click()
    hooks.get_by_test_id("hook-add").click()
    expect(page.get_by_test_id("hook-secret")).to_have_text(re.compile("^whsec_"))
    secret = page.get_by_test_id("hook-secret").inner_text().strip()
    expect(hooks.get_by_test_id("hook-row")).to_contain_text("message.completed")

    chat = open_app(page.context.new_page())
    wait_live(chat)
    question = unique("webhook question")
    send(chat, question)
    expect(chat.get_by_test_id("assistant-message").last).to_have_attribute("data-status", "complete")
    (event,) = receiver.verified(secret, 1)
    assert event["type"] == "message.completed"
    assert event["data"]["source"] == "ui" and event["data"]["content"] == expected(question)

    hooks.get_by_test_id("hook-test").click()
    expect(hooks.get_by_test_id("delivery-row")).to_have_count(2)
    assert receiver.verified(secret, 2)[1]["type"] == "webhook.test"
    hooks.get_by_test_id("hook-log").click()
    expect(hooks.get_by_test_id("delivery-status").first).to_have_text("succeeded")
