"""The account page (name, password, sign-out everywhere, export, deletion) and the admin page (users, approval)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from .helpers import (
    HOME,
    Account,
    ask,
    chat_id,
    fill_sign_in,
    open_app,
    open_user_menu,
    unique,
    wait_live,
    wait_login,
)


def open_account(page: Page) -> Locator:
    """From the chat, through the user menu, to the account page."""
    open_app(page)
    open_user_menu(page).get_by_test_id("menu-account").click()
    expect(page).to_have_url(re.compile(r"/account/?$"))
    account = page.get_by_test_id("account-page")
    expect(account).to_be_visible()
    expect(page.get_by_test_id("signed-in-as")).to_contain_text("@")  # on_load ran
    return account


def test_rename_and_change_password(open_page: Callable[..., Page], make_account: Callable[..., Account]) -> None:
    user = make_account("profile")
    page = open_page(signed_in=user)
    account = open_account(page)
    expect(page.get_by_test_id("signed-in-as")).to_have_text(f"Signed in as {user.email} (local)")

    name = account.get_by_label("Name")
    expect(name).to_have_value(user.name)
    name.fill("Фёдор Михайлович")
    page.get_by_test_id("save-name").click()
    expect(page.get_by_test_id("profile-notice")).to_have_text("Saved")
    page.reload()
    expect(page.get_by_test_id("account-page").get_by_label("Name")).to_have_value("Фёдор Михайлович")

    # A wrong current password is refused and changes nothing.
    new_password = unique("new-password-")
    page.get_by_label("Current password").fill("not-my-password-1")
    page.get_by_label("New password").fill(new_password)
    page.get_by_label("Password again").fill(new_password)
    page.get_by_test_id("change-password").click()
    expect(page.get_by_test_id("password-error")).to_have_text("The current password is wrong.")

    page.get_by_label("Current password").fill(user.password)
    page.get_by_label("New password").fill(new_password)
    page.get_by_label("Password again").fill(new_password)
    page.get_by_test_id("change-password").click()
    expect(page.get_by_test_id("password-notice")).to_have_text(
        re.compile(r"^Password changed\. Other devices were signed out \(\d+\)\.$")
    )
    expect(page.get_by_test_id("password-error")).to_have_count(0)
    open_app(page)  # this browser stays signed in

    # At the login page, the old password fails and the new one works.
    other = open_page(signed_in=False)
    other.goto("/login")
    wait_login(other)
    fill_sign_in(other, user.email, user.password)
    wait_login(other)
    expect(other.get_by_test_id("login-error")).to_have_text("Wrong email or password.")
    fill_sign_in(other, user.email, new_password)
    expect(other).to_have_url(HOME)
    wait_live(other)


def test_sign_out_on_all_devices(open_page: Callable[..., Page], make_account: Callable[..., Account]) -> None:
    user = make_account("devices")
    laptop, phone, tablet = open_page(signed_in=user), open_page(signed_in=user), open_page(signed_in=user)
    open_app(phone)
    phone.get_by_test_id("composer").fill(unique("typed before the sign-out "))
    open_app(tablet)
    account = open_account(laptop)
    # Three browsers, plus the session the sign-up opened.
    expect(laptop.get_by_test_id("session-count")).to_have_text("Signed in on 4 device(s).")

    account.get_by_test_id("sign-out-all").click()
    wait_login(laptop)
    expect(laptop.get_by_test_id("login-info")).to_have_text("You are signed out on all devices.")

    # The phone's next action (sending what it had typed) ends at the login page.
    phone.get_by_test_id("composer").press("Enter")
    wait_login(phone)
    expect(phone.get_by_test_id("login-info")).to_have_text("Your session ended. Please sign in again.")
    # The tablet finds out on its next reload.
    tablet.reload()
    wait_login(tablet)

    # Signing in again starts a fresh chat list with nothing lost (no chat had been made).
    fill_sign_in(phone, user.email, user.password)
    expect(phone).to_have_url(HOME)
    wait_live(phone)
    expect(phone.get_by_test_id("sidebar")).to_contain_text("No chats yet")


def test_export_has_my_chats_and_nobody_elses(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    me, them = make_account("exporter"), make_account("stranger")
    theirs = open_page(signed_in=them)
    open_app(theirs)
    their_question = unique("theirs")
    ask(theirs, their_question)
    their_cid = chat_id(theirs)

    page = open_page(signed_in=me)
    open_app(page)
    question = unique("mine")
    ask(page, question)
    cid = chat_id(page)
    account = open_account(page)
    with page.expect_download() as info:
        account.get_by_test_id("export").click()
    download = info.value
    assert re.fullmatch(r"rubin-export-\d{8}\.json", download.suggested_filename), download.suggested_filename
    text = Path(download.path()).read_text(encoding="utf-8")
    data = json.loads(text)

    assert data["format"] == "rubin-export/1"
    assert data["user"]["email"] == me.email
    assert [c["id"] for c in data["conversations"]] == [cid]
    messages = data["conversations"][0]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == question
    assert messages[1]["status"] == "complete" and messages[1]["content"].startswith(f"Echo: {question}")
    for foreign in (them.email, their_question, their_cid):
        assert foreign not in text
    expect(page.get_by_test_id("account-page")).to_be_visible()  # the download left the page where it was


def test_delete_account(open_page: Callable[..., Page], make_account: Callable[..., Account]) -> None:
    user = make_account("leaving")
    page = open_page(signed_in=user)
    open_app(page)
    ask(page, unique("last words"))
    open_account(page)
    page.get_by_test_id("delete-account").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("Type your email to confirm.")
    confirm = dialog.locator('input[name="confirm"]')
    confirm.fill("someone-else@e2e.example")
    page.get_by_test_id("confirm-delete-account").click()
    expect(page.get_by_test_id("delete-error")).to_have_text("Type your email exactly to confirm.")
    expect(page).to_have_url(re.compile(r"/account/?$"))

    confirm.fill(user.email.upper())  # case does not matter
    page.get_by_test_id("confirm-delete-account").click()
    wait_login(page)
    expect(page.get_by_test_id("login-info")).to_have_text("Your account and all its data were deleted.")
    fill_sign_in(page, user.email, user.password)
    wait_login(page)
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong email or password.")


def test_non_admin_cannot_open_admin(open_page: Callable[..., Page]) -> None:
    page = open_page()
    open_app(page)
    menu = open_user_menu(page)
    expect(menu.get_by_test_id("menu-account")).to_be_visible()
    expect(menu.get_by_test_id("menu-admin")).to_have_count(0)
    page.keyboard.press("Escape")
    page.goto("/admin")
    expect(page).to_have_url(HOME)
    wait_live(page)
    expect(page.get_by_test_id("admin-page")).to_have_count(0)
    expect(page.get_by_test_id("policy-require_approval")).to_have_count(0)


def _approval_switch(page: Page) -> Locator:
    return page.get_by_test_id("policy-require_approval")


def _set_approval(page: Page, on: bool) -> None:
    switch = _approval_switch(page)
    state = "checked" if on else "unchecked"
    if switch.get_attribute("data-state") != state:
        switch.click()
    expect(switch).to_have_attribute("data-state", state)


def open_admin(page: Page) -> None:
    """From the chat, through the user menu, to the admin page (loaded)."""
    open_app(page)
    open_user_menu(page).get_by_test_id("menu-admin").click()
    expect(page).to_have_url(re.compile(r"/admin/?$"))
    expect(page.get_by_test_id("user-row").first).to_be_visible()


@pytest.fixture
def admin_page(open_page: Callable[..., Page], admin_account: Account) -> Iterator[Page]:
    """The admin page, signed in as the admin; approval is switched back off afterwards (the server is shared)."""
    page = open_page(signed_in=admin_account)
    try:
        yield page
    finally:
        reset = open_page(signed_in=admin_account)
        open_admin(reset)
        _set_approval(reset, False)


def test_admin_approves_a_new_user(
    admin_page: Page, open_page: Callable[..., Page], admin_account: Account, e2e_user: Account
) -> None:
    page = admin_page
    open_admin(page)
    rows = page.get_by_test_id("user-row")
    expect(rows.filter(has_text=admin_account.email)).to_have_count(1)
    expect(rows.filter(has_text=e2e_user.email)).to_have_count(1)
    expect(rows.filter(has_text=admin_account.email).get_by_test_id("role-select")).to_have_text("Admin")
    expect(rows.filter(has_text=e2e_user.email).get_by_test_id("role-select")).to_have_text("User")
    expect(page.get_by_text("New users wait for approval")).to_be_visible()
    _set_approval(page, True)

    # A new sign-up now waits.
    email = f"{unique('newcomer')}@e2e.example"
    password = unique("waiting-pass-")
    newcomer = open_page(signed_in=False)
    newcomer.goto("/login?mode=signup")
    wait_login(newcomer)
    form = newcomer.get_by_test_id("signup-form")
    form.get_by_label("Name").fill("Новичок")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password", exact=True).fill(password)
    form.get_by_label("Password again").fill(password)
    form.get_by_test_id("sign-up").click()
    expect(newcomer).to_have_url(re.compile(r"/pending/?$"))
    expect(newcomer.get_by_test_id("pending-body")).to_contain_text(email)
    newcomer.goto("/")  # the chat stays closed
    expect(newcomer).to_have_url(re.compile(r"/pending/?$"))
    expect(newcomer.get_by_test_id("pending-body")).to_contain_text(email)

    # The admin sees the pending account first, and approves it.
    page.reload()
    row = rows.filter(has_text=email)
    expect(row).to_have_count(1)
    expect(rows.first).to_contain_text(email)
    expect(row.get_by_test_id("role-select")).to_have_text("Pending")
    row.get_by_test_id("approve").click()
    expect(row.get_by_test_id("role-select")).to_have_text("User")
    expect(row.get_by_test_id("approve")).to_have_count(0)

    # "Check again" now opens the chat.
    newcomer.get_by_role("button", name="Check again").click()
    expect(newcomer).to_have_url(HOME)
    wait_live(newcomer)
    ask(newcomer, unique("approved "))

    _set_approval(page, False)
    page.reload()
    expect(_approval_switch(page)).to_have_attribute("data-state", "unchecked")


def test_someone_signing_up_with_my_email_is_told_neutrally_and_shown_to_me(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    owner = make_account("owned")
    stranger = open_page(signed_in=False)
    stranger.goto("/login?mode=signup")
    form = stranger.get_by_test_id("signup-form")
    expect(form).to_be_visible(timeout=20_000)
    form.locator('input[name="email"]').fill(owner.email)
    for name in ("password", "password2"):
        form.locator(f'input[name="{name}"]').fill("a-brand-new-password-1")
    form.get_by_test_id("sign-up").click()
    error = stranger.get_by_test_id("login-error")
    expect(error).to_have_text(
        "No account was created with these details. If you already have an account, sign in instead."
    )
    expect(stranger.locator("body")).not_to_contain_text("already registered")

    page = open_page(signed_in=owner)
    open_account(page)
    expect(page.get_by_test_id("security-notice")).to_contain_text("Someone tried to create an account with your email")


def test_admin_filters_the_audit_log_and_sees_look_alike_accounts(
    admin_page: Page, make_account: Callable[..., Account], app_server
) -> None:
    tag = unique("audited")
    real = make_account(tag)
    imitation = real.email.replace("a", "\u0430", 1)  # a Cyrillic "а" in place of the first Latin "a"
    assert imitation != real.email
    password = f"pw-{tag}-long"
    form = {"name": "Imitator", "email": imitation, "password": password, "password2": password}
    httpx.post(f"{app_server.url}/auth/local/signup", data=form, timeout=30)
    for _ in range(2):  # two failed sign-ins of the real account
        httpx.post(
            f"{app_server.url}/auth/local/login", data={"email": real.email, "password": "wrong password!"}, timeout=30
        )

    page = admin_page
    open_admin(page)
    # The imitation's row warns that it looks like the real account (and the real one's row the other way).
    expect(page.get_by_test_id("lookalike").filter(has_text=f"Looks like {real.email}")).to_have_count(1)
    expect(page.get_by_test_id("lookalike").filter(has_text=f"Looks like {imitation}")).to_have_count(1)

    page.get_by_test_id("audit-text").fill(real.email)
    page.get_by_test_id("audit-failures").click()
    page.get_by_test_id("audit-filter").click()
    audit = page.get_by_test_id("audit-row")
    expect(audit).to_have_count(2)
    expect(audit.first).to_contain_text("sign_in_failed")
    expect(page.get_by_test_id("audit-older")).to_be_disabled()
