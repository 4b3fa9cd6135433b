"""Two users never see each other's chats: not in the sidebar, not by URL, not through a forged websocket event."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx
from playwright.sync_api import Page, expect

from .helpers import (
    SESSION_COOKIE,
    Account,
    add_session,
    answers,
    ask,
    body,
    chat_id,
    chat_item,
    expected,
    fill_sign_in,
    open_app,
    open_user_menu,
    session_token,
    sidebar_link,
    unique,
    wait_live,
    wait_login,
    wait_until,
)

# Keeps a handle on the page's websocket and a copy of every text frame the page sends.
WS_TAP = """
(() => {
  const Native = window.WebSocket;
  window.__rubinWs = {socket: null, sent: []};
  class Tap extends Native {
    constructor(...args) {
      super(...args);
      window.__rubinWs.socket = this;
    }
    send(data) {
      if (typeof data === 'string') window.__rubinWs.sent.push(data);
      return super.send(data);
    }
  }
  window.WebSocket = Tap;
})();
"""


def _chat_of(page: Page, prefix: str) -> tuple[str, str]:
    """Start a chat with one question; (conversation id, question)."""
    open_app(page)
    question = unique(prefix)
    ask(page, question)
    return chat_id(page), question


def _export(base_url: str, account: Account) -> dict:
    """The account's own data export, as its owner downloads it."""
    cookies = {SESSION_COOKIE: session_token(base_url, account)}
    response = httpx.get(f"{base_url}/api/account/export", cookies=cookies, timeout=30)
    response.raise_for_status()
    return response.json()


def test_other_users_chats_stay_invisible(open_page: Callable[..., Page], make_account: Callable[..., Account]) -> None:
    alice, bob = make_account("alice"), make_account("bob")
    a = open_page(signed_in=alice)
    cid, question = _chat_of(a, "secret")

    b = open_page(signed_in=bob)
    open_app(b)
    sidebar = b.get_by_test_id("sidebar")
    expect(sidebar).to_contain_text("No chats yet")
    expect(sidebar.get_by_test_id("chat-item")).to_have_count(0)
    expect(sidebar_link(b, cid)).to_have_count(0)
    b.get_by_test_id("chat-filter").fill(question)  # not even by searching for its title
    expect(sidebar.get_by_test_id("chat-item")).to_have_count(0)

    # Alice's link, opened by Bob: "not found", and nothing of the chat on the page.
    open_app(b, f"/c/{cid}")
    expect(b.get_by_test_id("not-found")).to_contain_text("Chat not found")
    expect(b.get_by_test_id("user-message")).to_have_count(0)
    expect(answers(b)).to_have_count(0)
    expect(b.locator("body")).not_to_contain_text(question)
    expect(b.get_by_test_id("chat-title")).not_to_contain_text(question)

    # Bob's own chat lists only his.
    b.get_by_test_id("new-chat").click()
    own, _ = _chat_of(b, "bobs")
    expect(b.get_by_test_id("sidebar").get_by_test_id("chat-item")).to_have_count(1)
    expect(sidebar_link(b, own)).to_be_visible()

    # Alice still has hers, untouched, and sees nothing of Bob's.
    a.reload()
    wait_live(a)
    expect(a.get_by_test_id("user-message")).to_contain_text(question)
    expect(sidebar_link(a, cid)).to_be_visible()
    expect(sidebar_link(a, own)).to_have_count(0)


def _sent_frame(page: Page, handler: str, needle: str) -> str:
    """The last frame the page sent for this event handler that contains `needle`."""

    def find() -> str | None:
        frames = page.evaluate("() => window.__rubinWs.sent")
        return next((f for f in reversed(frames) if f".{handler}" in f and needle in f), None)

    return wait_until(find, what=f"a websocket frame for {handler}")


def test_forged_websocket_events_cannot_touch_another_users_chat(
    open_page: Callable[..., Page], make_account: Callable[..., Account], base_url: str
) -> None:
    alice, bob = make_account("alice"), make_account("mallory")
    a = open_page(signed_in=alice)
    victim, question = _chat_of(a, "victim")
    title = question

    b = open_page(signed_in=bob)
    b.context.add_init_script(WS_TAP)
    own, _ = _chat_of(b, "own")
    assert b.evaluate("() => window.__rubinWs.socket !== null && window.__rubinWs.socket.readyState === 1")

    # A harmless action on Bob's own chat shows what its events look like on the wire: open the rename
    # dialog (the event carries the chat's id), then cancel.
    chat_item(b, own).get_by_test_id("chat-menu").click()
    b.get_by_test_id("rename").click()
    expect(b.get_by_test_id("rename-input")).to_be_visible()
    b.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(b.get_by_test_id("rename-input")).to_be_hidden()
    rename = _sent_frame(b, "ask_rename", own)
    chat_item(b, own).get_by_test_id("chat-menu").click()
    b.get_by_test_id("delete").click()
    expect(b.get_by_test_id("confirm-delete")).to_be_visible()
    b.get_by_role("alertdialog").get_by_role("button", name="Cancel").click()
    expect(b.get_by_test_id("confirm-delete")).to_be_hidden()
    delete = _sent_frame(b, "ask_delete", own)

    def forge(frame: str) -> None:
        b.evaluate("(frame) => window.__rubinWs.socket.send(frame)", frame)

    # The same events with Alice's chat id (and a title of Bob's choosing), then Bob confirms in his own
    # dialogs: the server acts for Bob, who owns no such chat.
    hijack = unique("HIJACKED")
    original_title = json.loads(rename[rename.index("[") :])[1]["payload"]["title"]
    forge(rename.replace(own, victim).replace(json.dumps(original_title), json.dumps(hijack)))
    field = b.get_by_test_id("rename-input")
    expect(field).to_have_value(hijack)
    b.get_by_test_id("rename-save").click()
    expect(field).to_be_hidden()
    forge(delete.replace(own, victim))
    b.get_by_test_id("confirm-delete").click()
    expect(b.get_by_test_id("confirm-delete")).to_be_hidden()

    # Bob got nothing of Alice's chat, and his own is untouched.
    expect(sidebar_link(b, victim)).to_have_count(0)
    expect(b.locator("body")).not_to_contain_text(question)
    expect(sidebar_link(b, own)).to_be_visible()
    b.reload()
    wait_live(b)
    expect(b.get_by_test_id("sidebar").get_by_test_id("chat-item")).to_have_count(1)

    # Alice's chat kept its title and messages: in her browser...
    a.reload()
    wait_live(a)
    expect(a.get_by_test_id("chat-title")).to_have_text(title)
    expect(sidebar_link(a, victim)).to_have_text(title)
    expect(a.get_by_test_id("user-message")).to_have_count(1)
    expect(a.get_by_test_id("user-message")).to_contain_text(question)
    expect(body(answers(a).last)).to_have_text(expected(question))
    # ... and in her export.
    data = _export(base_url, alice)
    chats = {c["id"]: c for c in data["conversations"]}
    assert set(chats) == {victim}, chats.keys()
    assert chats[victim]["title"] == title
    assert [m["role"] for m in chats[victim]["messages"]] == ["user", "assistant"]
    assert chats[victim]["messages"][0]["content"] == question
    assert hijack not in json.dumps(data)


def test_a_signed_out_session_cookie_is_dead(
    open_page: Callable[..., Page], make_account: Callable[..., Account], base_url: str
) -> None:
    account = make_account("replay")
    page = open_page(signed_in=account)
    cid, question = _chat_of(page, "replay")
    stolen = next(c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE)

    open_user_menu(page).get_by_test_id("menu-sign-out").click()
    wait_login(page)
    expect(page.get_by_test_id("login-info")).to_have_text("You are signed out.")
    assert not [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    page.goto(f"/c/{cid}")
    wait_login(page)

    # The old cookie, replayed in another browser, opens nothing.
    thief = open_page(signed_in=False)
    add_session(thief.context, base_url, stolen)
    thief.goto(f"/c/{cid}")
    wait_login(thief)
    expect(thief).to_have_url(re.compile(rf"\?next=(/|%2F)c(/|%2F){cid}$"))
    expect(thief.locator("body")).not_to_contain_text(question)
    thief.goto("/account")
    wait_login(thief)
    response = httpx.get(f"{base_url}/api/account/export", cookies={SESSION_COOKIE: stolen}, timeout=30)
    assert response.status_code == 401


def test_a_shared_computer_shows_the_next_user_nothing_of_the_last(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    """A signs out, B signs in in the same tab: no frame B's page receives carries anything of A's."""
    alice, bob = make_account("first"), make_account("second")
    page = open_page(signed_in=alice)
    _, question = _chat_of(page, "shared")
    received: list[str] = []
    listening = {"on": False}

    def tap(ws) -> None:  # every websocket the tab opens from now on (sign-out and sign-in reload the page)
        ws.on("framereceived", lambda frame: listening["on"] and received.append(str(frame)))

    page.on("websocket", tap)
    listening["on"] = True  # from the sign-out on: the login page's own hydration is where the old leak showed
    open_user_menu(page).get_by_test_id("menu-sign-out").click()
    wait_login(page)
    fill_sign_in(page, bob.email, bob.password)
    wait_live(page)
    expect(page.get_by_test_id("sidebar")).to_contain_text("No chats yet")
    assert received, "no websocket frame was seen after the sign-in (the check would prove nothing)"
    leaked = [f[:200] for f in received if alice.email in f or question in f]
    assert not leaked, f"Bob's page received Alice's data: {leaked}"
