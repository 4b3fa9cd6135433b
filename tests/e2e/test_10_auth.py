"""Signing in: the login wall, local sign-up and sign-in, the lockout, an OpenID Connect provider, Russian, phones."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.fakes.oidc_provider import OIDCProvider

from .helpers import (
    HOME,
    LOGIN_MAX_FAILURES,
    LOGIN_URL,
    PROVIDER_ID,
    PROVIDER_NAME,
    Account,
    ask,
    chat_id,
    fill_sign_in,
    no_horizontal_overflow,
    open_app,
    open_user_menu,
    unique,
    wait_live,
    wait_login,
)

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 3}


def test_anonymous_visitor_is_sent_to_login_and_back_to_the_chat(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    account = make_account("back")
    owner = open_page(signed_in=account)
    open_app(owner)
    question = unique("wall")
    ask(owner, question)
    cid = chat_id(owner)

    page = open_page(signed_in=False)
    page.goto("/")
    wait_login(page)
    expect(page).to_have_url(re.compile(r"/login/?$"))  # the home page adds no ?next=
    expect(page.get_by_role("heading", name="Sign in to Rubin AI")).to_be_visible()
    expect(page.get_by_test_id("composer")).to_have_count(0)

    # A link to a chat survives the detour through the login page.
    page.goto(f"/c/{cid}")
    wait_login(page)
    expect(page).to_have_url(re.compile(rf"/login/?\?next=(/|%2F)c(/|%2F){cid}$"))
    expect(page.get_by_test_id("user-message")).to_have_count(0)
    fill_sign_in(page, account.email, account.password)
    expect(page).to_have_url(re.compile(rf"/c/{cid}$"))
    wait_live(page)
    expect(page.get_by_test_id("user-message")).to_contain_text(question)
    expect(page.get_by_test_id("chat-title")).to_have_text(question)


def test_sign_up_through_the_form(open_page: Callable[..., Page], admin_account: Account) -> None:
    email = f"{unique('anna')}@e2e.example"
    name = "Анна Сергеевна Тестова"
    password = unique("correct-horse-")
    page = open_page(signed_in=False)
    page.goto("/login")
    wait_login(page)
    page.get_by_test_id("to-signup").click()
    form = page.get_by_test_id("signup-form")
    expect(page.get_by_role("heading", name="Create your Rubin AI account")).to_be_visible()
    expect(form).to_contain_text("At least 10 characters.")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password", exact=True).fill(password)
    form.get_by_label("Password again").fill(password)
    form.get_by_test_id("sign-up").click()

    expect(page).to_have_url(HOME)
    wait_live(page)
    expect(page.get_by_role("heading", name="How can I help?")).to_be_visible()
    menu = open_user_menu(page)
    expect(menu).to_contain_text(email)
    expect(menu.get_by_test_id("menu-admin")).to_have_count(0)  # only the first account is an admin
    menu.get_by_test_id("menu-account").click()
    expect(page.get_by_test_id("account-page")).to_be_visible()
    expect(page.get_by_test_id("signed-in-as")).to_have_text(f"Signed in as {email} (local)")
    expect(page.get_by_test_id("account-page").get_by_label("Name")).to_have_value(name)


def test_sign_up_refuses_two_different_passwords(open_page: Callable[..., Page]) -> None:
    email = f"{unique('typo')}@e2e.example"
    page = open_page(signed_in=False)
    page.goto("/login?mode=signup")
    wait_login(page)
    form = page.get_by_test_id("signup-form")
    form.get_by_label("Name").fill("Пётр")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password", exact=True).fill("first-password-1")
    form.get_by_label("Password again").fill("other-password-2")
    form.get_by_test_id("sign-up").click()
    expect(page.get_by_test_id("login-error")).to_have_text("The two passwords differ.")
    form = page.get_by_test_id("signup-form")  # still the sign-up form, with what was typed (not the passwords)
    expect(form.get_by_label("Email")).to_have_value(email)
    expect(form.get_by_label("Name")).to_have_value("Пётр")
    expect(form.get_by_label("Password", exact=True)).to_have_value("")


def test_wrong_password_is_explained_and_keeps_the_email(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    account = make_account("typo")
    page = open_page(signed_in=False)
    page.goto("/login")
    wait_login(page)
    fill_sign_in(page, account.email, account.password + "-wrong")

    wait_login(page)
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong email or password.")
    form = page.get_by_test_id("signin-form")
    expect(form.get_by_label("Email")).to_have_value(account.email)
    expect(form.get_by_label("Password")).to_have_value("")
    assert account.password not in page.url  # the password never travels in the URL

    # The right password then works.
    fill_sign_in(page, account.email, account.password)
    expect(page).to_have_url(HOME)
    wait_live(page)


def test_repeated_failures_lock_the_account(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    account = make_account("locked")
    page = open_page(signed_in=False)
    page.goto("/login")
    wait_login(page)
    for attempt in range(LOGIN_MAX_FAILURES):
        fill_sign_in(page, account.email, f"not-the-password-{attempt}")
        wait_login(page)
        expect(page.get_by_test_id("login-error")).to_have_text("Wrong email or password.")

    # Now even the right password is refused for a while, and the page says so.
    fill_sign_in(page, account.email, account.password)
    wait_login(page)
    expect(page.get_by_test_id("login-error")).to_have_text(
        re.compile(r"^Too many failed attempts\. Try again in \d+ min\.$")
    )
    expect(page.get_by_test_id("signin-form").get_by_label("Email")).to_have_value(account.email)
    page.goto("/")
    wait_login(page)  # not signed in

    # The lockout is per account: another account signs in from the same browser.
    other = make_account("unlocked")
    fill_sign_in(page, other.email, other.password)
    expect(page).to_have_url(HOME)
    wait_live(page)


def _provider_sign_in(page: Page, provider: OIDCProvider, sub: str) -> None:
    page.goto("/login")
    wait_login(page)
    button = page.get_by_test_id(f"provider-{PROVIDER_ID}")
    expect(button).to_have_text(f"Sign in with {PROVIDER_NAME}")
    button.click()
    # The provider's own page.
    expect(page).to_have_url(re.compile(rf"^{re.escape(provider.issuer)}/"))
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize").click()
    expect(page).to_have_url(HOME)
    wait_live(page)


def test_sign_in_with_the_provider(
    open_page: Callable[..., Page], oidc_provider: OIDCProvider, admin_account: Account
) -> None:
    sub = unique("oidc-")
    email = f"{sub}@idp.example"
    oidc_provider.set_user(sub, {"email": email, "email_verified": True, "name": "Ольга из IdP"})
    page = open_page(signed_in=False)
    _provider_sign_in(page, oidc_provider, sub)

    ask(page, unique("via provider "))  # a working chat
    menu = open_user_menu(page)
    expect(menu).to_contain_text(email)
    menu.get_by_test_id("menu-account").click()
    expect(page.get_by_test_id("signed-in-as")).to_have_text(f"Signed in as {email} ({PROVIDER_NAME})")
    expect(page.get_by_test_id("account-page").get_by_label("Name")).to_have_value("Ольга из IdP")
    expect(page.get_by_test_id("change-password")).to_have_count(0)  # no password to change here

    # Signing in again finds the same account (no second sign-up), in a new browser.
    again = open_page(signed_in=False)
    _provider_sign_in(again, oidc_provider, sub)
    again.goto("/account")
    expect(again.get_by_test_id("signed-in-as")).to_have_text(f"Signed in as {email} ({PROVIDER_NAME})")


def test_a_second_provider_user_is_not_an_admin(
    open_page: Callable[..., Page], oidc_provider: OIDCProvider, admin_account: Account
) -> None:
    sub = unique("plain-")
    oidc_provider.set_user(sub, {"email": f"{sub}@idp.example", "email_verified": True, "name": "Plain"})
    page = open_page(signed_in=False)
    _provider_sign_in(page, oidc_provider, sub)
    menu = open_user_menu(page)
    expect(menu.get_by_test_id("menu-account")).to_be_visible()
    expect(menu.get_by_test_id("menu-admin")).to_have_count(0)
    page.keyboard.press("Escape")
    page.goto("/admin")
    expect(page).to_have_url(HOME)
    wait_live(page)
    expect(page.get_by_test_id("admin-page")).to_have_count(0)


def test_login_page_in_russian(open_page: Callable[..., Page]) -> None:
    page = open_page(signed_in=False, locale="ru-RU")
    page.goto("/login")
    wait_login(page)
    expect(page.get_by_role("heading", name="Вход в Rubin AI")).to_be_visible()
    expect(page.get_by_test_id(f"provider-{PROVIDER_ID}")).to_have_text(f"Войти через {PROVIDER_NAME}")
    form = page.get_by_test_id("signin-form")
    expect(form.get_by_label("Эл. почта")).to_be_visible()
    expect(form.get_by_label("Пароль")).to_be_visible()
    expect(form.get_by_test_id("sign-in")).to_have_text("Войти")
    expect(page.get_by_test_id("to-signup")).to_have_text("Нет аккаунта? Создайте его")
    expect(page.get_by_test_id("language")).to_have_text("Русский")

    # Errors too.
    fill_sign_in(page, f"{unique('nobody')}@e2e.example", "no-such-password")
    wait_login(page)
    expect(page.get_by_test_id("login-error")).to_have_text("Неверная почта или пароль.")
    page.get_by_test_id("to-signup").click()
    expect(page.get_by_role("heading", name="Новый аккаунт Rubin AI")).to_be_visible()
    expect(page.get_by_test_id("signup-form")).to_contain_text("Не короче 10 символов.")
    expect(page.get_by_test_id("sign-up")).to_have_text("Создать аккаунт")


def test_login_page_fits_a_phone(open_page: Callable[..., Page]) -> None:
    page = open_page(signed_in=False, **PHONE)
    page.goto("/login?error=bad_credentials&email=" + "a-rather-long-address" * 3 + "%40e2e.example")
    wait_login(page)
    expect(page.get_by_test_id("login-error")).to_be_visible()
    no_horizontal_overflow(page)
    for testid in ("sign-in", f"provider-{PROVIDER_ID}"):
        box = page.get_by_test_id(testid).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] >= 40, (testid, box)
    page.get_by_test_id("to-signup").tap()
    expect(page.get_by_test_id("signup-form")).to_be_visible()
    no_horizontal_overflow(page)
    expect(page).to_have_url(LOGIN_URL)
