"""Groups and permissions in Chromium (issue #13): an admin makes a group limited to one model and without API
keys; its member sees only that model and no way to make a key; deleting a user asks the admin's password."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Locator, Page, expect

from .helpers import Account, open_app, open_user_menu, unique
from .test_15_interface import _axe_violations


def open_admin(page: Page) -> None:
    """From the chat, through the user menu, to the admin page (loaded)."""
    open_app(page)
    open_user_menu(page).get_by_test_id("menu-admin").click()
    expect(page).to_have_url(re.compile(r"/admin/?$"))
    expect(page.get_by_test_id("user-row").first).to_be_visible()
    expect(page.get_by_test_id("permission-defaults")).to_be_visible()


def make_group(page: Page, name: str) -> Locator:
    """Create a group on the admin page; its card."""
    page.get_by_test_id("new-group-name").fill(name)
    page.get_by_test_id("create-group").click()
    card = page.get_by_test_id("group-card").filter(has=page.locator(f'input[value="{name}"]'))
    expect(card).to_have_count(1)
    return card


def test_a_group_limits_its_member_and_deleting_a_user_asks_for_the_password(
    open_page: Callable[..., Page], admin_account: Account, make_account: Callable[..., Account]
) -> None:
    member, victim = make_account("grouped"), make_account("victim")
    admin = open_page(signed_in=admin_account)
    open_admin(admin)
    name = unique("Interns ")
    card = make_group(admin, name)
    try:
        # Only the small model, no API keys; the member joins.
        keys = card.get_by_test_id("perm-api_keys")
        expect(keys).to_have_attribute("data-state", "checked")
        keys.click()
        expect(keys).to_have_attribute("data-state", "unchecked")
        small = card.get_by_role("checkbox", name="standin-small")
        small.click()
        expect(small).to_have_attribute("data-state", "checked")
        expect(card.get_by_role("checkbox", name="standin-model")).to_have_attribute("data-state", "unchecked")
        card.get_by_role("combobox", name="Add a member").click()
        admin.get_by_role("option", name=member.email, exact=True).click()
        expect(card.get_by_test_id("group-member")).to_have_text(member.email)
        audit = admin.get_by_test_id("audit-row")
        expect(audit.filter(has_text="group_member_added").first).to_contain_text(member.email)
        assert _axe_violations(admin) == []  # the groups section is accessible (no serious or critical findings)

        # The member sees one model, and no way to make an API key.
        page = open_page(signed_in=member)
        open_app(page)
        picker = page.get_by_test_id("model-select")
        expect(picker).to_contain_text("standin-small")
        picker.click()
        expect(page.get_by_role("option")).to_have_count(1)
        expect(page.get_by_role("option", name="standin-small")).to_be_visible()
        page.keyboard.press("Escape")
        open_user_menu(page).get_by_test_id("menu-account").click()
        expect(page).to_have_url(re.compile(r"/account/?$"))
        expect(page.get_by_test_id("keys-not-allowed")).to_have_text(
            "Your groups do not allow API keys: ask an administrator. Keys you made before do not work."
        )
        expect(page.get_by_test_id("create-key")).to_be_hidden()
        assert _axe_violations(page) == []

        # Deleting a user: the admin signed in minutes ago but has not confirmed it is them: the password first.
        row = admin.get_by_test_id("user-row").filter(has_text=victim.email)
        row.get_by_test_id("delete-user").click()
        admin.get_by_test_id("confirm-delete-user").click()
        password = admin.get_by_test_id("reauth-password")
        expect(password).to_be_visible()
        expect(row).to_have_count(1)  # nothing deleted yet
        password.fill("not-the-password-9")
        admin.get_by_test_id("reauth-confirm").click()
        expect(admin.get_by_test_id("reauth-error")).to_have_text("The current password is wrong.")
        expect(row).to_have_count(1)
        password.fill(admin_account.password)
        admin.get_by_test_id("reauth-confirm").click()
        expect(password).to_be_hidden()
        expect(row).to_have_count(0)
        expect(admin.get_by_test_id("admin-error")).to_have_count(0)
    finally:
        card.get_by_test_id("delete-group").click()  # the server is shared with the other tests
        expect(card).to_have_count(0)
