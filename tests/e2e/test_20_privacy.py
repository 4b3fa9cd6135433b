"""Privacy controls in Chromium: a temporary chat streams its answer, can be stopped, leaves no row in the
database (read directly) and is gone after a reload; the account page lists the user's sessions with their
device, and ending another browser's session signs that browser out at once; the user's chat retention."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing

from playwright.sync_api import Page, expect

from tests.fakes.localai_standin import StandIn

from .conftest import ROOT, AppServer
from .helpers import (
    HOME,
    LOGIN_URL,
    Account,
    answer_requests,
    expected,
    fill_sign_in,
    open_app,
    send,
    unique,
    wait_live,
    wait_login,
    wait_until,
)


def _db_count(app_server: AppServer, sql: str, *args: object) -> int:
    """A count read straight from the app's SQLite file (what is on disk, not what the app shows)."""
    path = app_server.env["DATABASE_URL"].removeprefix("sqlite:///")
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return int(db.execute(sql, args).fetchone()[0])


def _states_holding(text: str) -> list[str]:
    """The stored tab states (Reflex's .states/ folder) that contain `text`."""
    found = []
    for path in (ROOT / ".states").glob("*.pkl"):
        try:
            if text.encode() in path.read_bytes():
                found.append(path.name)
        except FileNotFoundError:  # replaced meanwhile
            continue
    return found


def test_a_temporary_chat_streams_and_leaves_nothing(
    open_page: Callable[..., Page], make_account: Callable[..., Account], standin: StandIn, app_server: AppServer
) -> None:
    account = make_account("temporary")
    page = open_page(account)
    open_app(page)
    page.get_by_test_id("temporary-toggle").click()
    expect(page.get_by_test_id("temporary-notice")).to_contain_text("disappears when you leave it or reload")
    expect(page.get_by_test_id("chat-title")).to_have_text("Temporary chat")

    standin.config.token_rate = 20  # slow enough to be seen streaming
    marker = unique("tempmarker")
    question = f"[[tokens=40]] {marker}"
    send(page, question)
    answer = page.get_by_test_id("assistant-message").last
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(answer).to_have_attribute("data-status", "complete", timeout=20_000)
    expect(answer).to_contain_text(expected(question, tokens=40)[:40])
    expect(page).to_have_url(HOME)  # no /c/<id>: there is no conversation

    stopped = f"[[tokens=200]] {unique('tempstop')}"  # a second turn, stopped mid-answer
    send(page, stopped)
    expect(page.get_by_test_id("assistant-message").last).to_have_attribute("data-status", "streaming")
    expect(page.get_by_test_id("assistant-message").last).not_to_have_text("", timeout=10_000)
    page.get_by_test_id("stop").click()
    last = page.get_by_test_id("assistant-message").last
    expect(last).to_have_attribute("data-status", "interrupted")
    expect(last.get_by_test_id("message-error")).to_contain_text("You stopped this answer.")
    expect(page.get_by_test_id("user-message")).to_have_count(2)
    wait_until(lambda: answer_requests(standin)[-1].outcome == "cancelled", what="the upstream request closed")
    sent = standin.last_request_json["messages"]  # the first exchange went along as the context
    assert [m["content"] for m in sent[1:]] == [question, expected(question, tokens=40), stopped]
    expect(page.get_by_test_id("chat-item")).to_have_count(0)  # nothing listed in the sidebar

    owner = "(SELECT id FROM users WHERE email = ?)"
    assert _db_count(app_server, f"SELECT count(*) FROM conversations WHERE user_id = {owner}", account.email) == 0
    assert _db_count(app_server, f"SELECT count(*) FROM messages WHERE user_id = {owner}", account.email) == 0
    assert _db_count(app_server, "SELECT count(*) FROM messages WHERE content LIKE ?", f"%{marker}%") == 0
    assert _db_count(app_server, "SELECT count(*) FROM webhook_deliveries WHERE payload LIKE ?", f"%{marker}%") == 0
    # Nor in the tab's stored state (.states/ on disk, no Redis here): the exchanges live in the browser only.
    assert list((ROOT / ".states").glob("*.pkl")), "no tab state stored at all (the check would prove nothing)"
    wait_until(lambda: _states_holding(marker) == [], what="no stored tab state holding the question")
    used = f"SELECT count(*) FROM usage_records WHERE user_id = {owner}"
    wait_until(lambda: _db_count(app_server, used, account.email) == 2, what="usage rows")  # counted, no content

    page.reload()
    wait_live(page)
    expect(page.get_by_test_id("user-message")).to_have_count(0)  # gone with the reload
    expect(page.get_by_test_id("temporary-notice")).to_have_count(0)
    expect(page.get_by_test_id("chat-title")).to_have_text("")


def test_the_sessions_list_ends_another_browser(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    account = make_account("sessions")
    page = open_page(account)
    page.goto("/account")
    rows = page.get_by_test_id("session-row")
    expect(rows.first).to_be_visible(timeout=20_000)
    page.get_by_test_id("end-other-sessions").click()  # the sign-up's own session goes: only this browser stays
    expect(page.get_by_test_id("sessions-notice")).to_be_visible()
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_test_id("session-current")).to_have_text("This device")

    other = open_page(False)  # a second browser, signed in through the login form
    other.goto("/login")
    wait_login(other)
    fill_sign_in(other, account.email, account.password)
    wait_live(other)

    page.reload()
    expect(rows).to_have_count(2)
    theirs = rows.filter(has=page.get_by_test_id("end-session"))
    expect(theirs.get_by_test_id("session-device")).to_contain_text("Chrome")  # from the browser's user agent
    expect(theirs).to_contain_text("127.0.0.1")
    theirs.get_by_test_id("end-session").click()
    expect(page.get_by_test_id("sessions-notice")).to_have_text("That device is signed out.")
    expect(rows).to_have_count(1)

    send(other, "am I still signed in?")  # the other browser's next step finds its session ended
    expect(other).to_have_url(LOGIN_URL, timeout=15_000)
    page.reload()
    expect(rows).to_have_count(1)  # this browser is still signed in
    page.get_by_test_id("sessions-keys-link").click()  # API keys (with their last use) are further down
    expect(page.get_by_test_id("api-keys")).to_be_in_viewport()


def test_a_user_keeps_their_chats_for_less(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    page = open_page(make_account("retention"))
    page.goto("/account")
    text = page.get_by_test_id("retention-text")
    expect(text).to_contain_text("Your chats are kept until you delete them.")
    page.get_by_test_id("retention-select").click()
    page.get_by_role("option", name="30 days", exact=True).click()
    expect(text).to_contain_text("deleted automatically 30 days after their last message")
    page.reload()
    expect(text).to_contain_text("deleted automatically 30 days after their last message")


def _set_instance_retention(admin: Page, days: int) -> None:
    admin.goto("/admin")
    field = admin.get_by_test_id("retention-days")
    expect(field).to_be_visible(timeout=20_000)
    field.fill(str(days))
    admin.get_by_test_id("retention-save").click()
    expect(admin.get_by_test_id("retention-notice")).to_be_visible()


def test_the_admin_sets_the_instance_retention_and_users_may_only_shorten_it(
    open_page: Callable[..., Page], make_account: Callable[..., Account], admin_account: Account
) -> None:
    admin = open_page(admin_account)
    _set_instance_retention(admin, 90)
    try:
        admin.reload()
        expect(admin.get_by_test_id("retention-days")).to_have_value("90")
        page = open_page(make_account("shorter"))
        page.goto("/account")
        text = page.get_by_test_id("retention-text")
        expect(text).to_contain_text("deleted automatically 90 days after their last message")
        expect(text).to_contain_text("This instance's rule: 90 days.")
        page.get_by_test_id("retention-select").click()
        offered = page.get_by_role("option")
        expect(offered).to_have_text(["Instance default", "1 day", "7 days", "30 days"])  # never longer than 90
        page.get_by_role("option", name="7 days", exact=True).click()
        expect(text).to_contain_text("deleted automatically 7 days after their last message")
        field = admin.get_by_test_id("retention-days")
        field.fill("-3")  # refused by the form itself (the service refuses it too: test_retention.py)
        admin.get_by_test_id("retention-save").click()
        assert field.evaluate("e => e.validity.valid") is False
        admin.reload()
        expect(admin.get_by_test_id("retention-days")).to_have_value("90")
    finally:
        _set_instance_retention(admin, 0)  # the other tests expect chats kept until deleted
