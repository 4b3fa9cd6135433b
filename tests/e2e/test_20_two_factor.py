"""Two-factor sign-in in Chromium: turn it on from the account page (codes computed with pyotp from the secret
shown), sign in with a code and with a recovery code, a reused recovery code and an expired code refused; the
admin policy's forced set-up; the section on a phone and in Russian."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pyotp
import pytest
from playwright.sync_api import Locator, Page, expect

from rubin_app.state.auth import NOT_DUE_TTL

from .helpers import HOME, Account, fill_sign_in, no_horizontal_overflow, open_app, send, unique, wait_live, wait_login

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 3}


def fresh_step() -> None:
    """Codes are typed within one 30 s step: wait when the step is about to end."""
    left = 30 - time.time() % 30
    if left < 4:
        time.sleep(left + 0.2)


def code(secret: str, offset: int = 0) -> str:
    """The authenticator app's code `offset` steps from now."""
    return pyotp.TOTP(secret).at(time.time() + 30 * offset)


def next_code(secret: str, last_step: int) -> tuple[str, int]:
    """A code the server has not seen: of the next step, once that is past the last one used (replay)."""
    while int(time.time()) // 30 + 1 <= last_step:
        time.sleep(0.5)
    step = int(time.time()) // 30 + 1
    return pyotp.TOTP(secret).generate_otp(step), step


def two_factor_section(page: Page, path: str = "/account") -> Locator:
    page.goto(path)
    section = page.get_by_test_id("two-factor-section")
    expect(section.get_by_test_id("two-factor-status")).to_be_visible()  # its state loaded over the websocket
    return section


def turn_on(page: Page, section: Locator) -> tuple[str, list[str], int]:
    """Turn on from the section: the secret shown, the recovery codes shown once, the step of the code used."""
    section.get_by_test_id("two-factor-on").click()
    expect(section.get_by_test_id("two-factor-qr").locator("img")).to_have_attribute(
        "src", re.compile(r"^data:image/svg\+xml")
    )
    secret = section.get_by_test_id("two-factor-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    section.get_by_test_id("setup-code").fill("000000" if code(secret) != "000000" else "111111")
    section.get_by_test_id("two-factor-confirm").click()
    expect(section.get_by_test_id("two-factor-error")).to_be_visible()  # a wrong code: still setting up
    fresh_step()
    step = int(time.time()) // 30
    section.get_by_test_id("setup-code").fill(code(secret))
    section.get_by_test_id("two-factor-confirm").click()
    expect(section.get_by_test_id("recovery-code")).to_have_count(10)
    codes = [c.strip() for c in section.get_by_test_id("recovery-code").all_inner_texts()]
    assert all(re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", c) for c in codes), codes
    return secret, codes, step


def sign_out(page: Page) -> None:
    page.goto("/account")
    page.get_by_test_id("sign-out").click()
    wait_login(page)


def password_step(page: Page, account: Account) -> Locator:
    """Sign in with the password: the login page asks for the code (no session yet)."""
    page.goto("/login")
    wait_login(page)
    fill_sign_in(page, account.email, account.password)
    form = page.get_by_test_id("code-form")
    expect(form).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login/?\?step=code"))
    assert not [c for c in page.context.cookies() if c["name"] == "rubin_session"]
    return form


def enter_code(page: Page, value: str) -> None:
    page.get_by_test_id("login-code").fill(value)
    page.get_by_test_id("verify-code").click()


def test_turn_on_then_sign_in_with_a_code_and_with_recovery_codes(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    user = make_account("totp")
    page = open_page(signed_in=user)
    section = two_factor_section(page)
    expect(section.get_by_test_id("two-factor-status")).to_have_text(re.compile("^Off"))
    secret, codes, last = turn_on(page, section)
    expect(section.get_by_test_id("two-factor-notice")).to_have_text("Two-factor sign-in is on.")
    section.get_by_role("button", name="I have saved them").click()
    expect(section.get_by_test_id("recovery-code")).to_have_count(0)
    expect(section.get_by_test_id("two-factor-status")).to_have_text("On. Recovery codes left: 10.")
    sign_out(page)

    # A code from the app (the next 30 s step: this one's code confirmed the set-up).
    password_step(page, user)
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    totp_code, last = next_code(secret, last)
    enter_code(page, totp_code)
    expect(page).to_have_url(HOME)
    wait_live(page)
    sign_out(page)

    # A recovery code, typed in capitals with spaces.
    password_step(page, user)
    enter_code(page, f" {codes[0].upper()} ")
    expect(page).to_have_url(HOME)
    wait_live(page)
    expect(two_factor_section(page).get_by_test_id("two-factor-status")).to_have_text("On. Recovery codes left: 9.")
    sign_out(page)

    # The same recovery code again, then an expired code from the app: refused, the step stays for a retry.
    password_step(page, user)
    enter_code(page, codes[0])
    expect(page.get_by_test_id("login-error")).to_have_text(
        "This recovery code was already used. Each works once: try another one."
    )
    enter_code(page, code(secret, -4))  # two minutes old
    expect(page.get_by_test_id("login-error")).to_have_text(
        "That code is not right. Check the time on your phone and try again."
    )
    expect(page.get_by_test_id("code-form")).to_be_visible()
    enter_code(page, codes[1])
    expect(page).to_have_url(HOME)
    wait_live(page)

    # Turning off needs the password and a current code.
    section = two_factor_section(page)
    section.get_by_test_id("off-password").fill(user.password)
    section.get_by_test_id("off-code").fill(code(secret, -4))
    section.get_by_test_id("two-factor-off").click()
    expect(section.get_by_test_id("two-factor-error")).to_have_text(
        "That code is not right. Check the time on your phone and try again."
    )
    section.get_by_test_id("off-password").fill(user.password)
    section.get_by_test_id("off-code").fill(next_code(secret, last)[0])
    section.get_by_test_id("two-factor-off").click()
    expect(section.get_by_test_id("two-factor-notice")).to_have_text("Two-factor sign-in is off.")
    sign_out(page)
    fill_sign_in(page, user.email, user.password)  # the password alone again
    expect(page).to_have_url(HOME)


def _set_policy(page: Page, label: str) -> None:
    page.get_by_test_id("policy-two-factor").click()
    page.get_by_role("option", name=label).click()
    expect(page.get_by_test_id("policy-two-factor")).to_have_text(label)


def _set_role(page: Page, email: str, role: str, password: str) -> None:
    """Change a role; a role change needs a recent re-authentication (admin page): the password when asked."""
    select = page.get_by_test_id("user-row").filter(has_text=email).get_by_test_id("role-select")
    select.click()
    page.get_by_role("option", name=role).click()
    reauth = page.get_by_test_id("reauth-password")
    expect(select.filter(has_text=role).or_(reauth)).to_be_visible()
    if reauth.is_visible():
        reauth.fill(password)
        page.get_by_test_id("reauth-confirm").click()
        expect(reauth).to_be_hidden()
    expect(select).to_have_text(role)


@pytest.fixture
def admin_on_admin_page(
    open_page: Callable[..., Page], admin_account: Account, make_account: Callable[..., Account]
) -> Iterator[Page]:
    """The admin page of an admin with two-factor on (a policy's author must use it); afterwards the policy is
    "Nobody" again and that admin a user (a shared server)."""
    boss = make_account("boss")
    admin = open_page(signed_in=admin_account)
    admin.goto("/admin")
    expect(admin.get_by_test_id("user-row").first).to_be_visible()
    expect(admin.get_by_test_id("policy-two-factor")).to_have_text("Nobody")
    admin.get_by_test_id("policy-two-factor").click()
    admin.get_by_role("option", name="Everyone").click()  # refused: this admin has no second factor
    expect(admin.get_by_test_id("two-factor-policy-error")).to_have_text(
        "Turn on two-factor sign-in for your own account first (account page)."
    )
    expect(admin.get_by_test_id("policy-two-factor")).to_have_text("Nobody")
    _set_role(admin, boss.email, "Admin", admin_account.password)
    page = open_page(signed_in=boss)
    turn_on(page, two_factor_section(page))
    page.goto("/admin")
    expect(page.get_by_test_id("policy-two-factor")).to_have_text("Nobody")
    try:
        yield page
    finally:
        _set_policy(page, "Nobody")
        admin.goto("/admin")
        _set_role(admin, boss.email, "User", admin_account.password)


def test_policy_sends_a_user_without_two_factor_to_set_it_up(
    admin_on_admin_page: Page, open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    user = make_account("forced")
    chatting = open_page(signed_in=make_account("chatting"))  # a tab already open when the policy changes
    open_app(chatting)
    _set_policy(admin_on_admin_page, "Everyone")
    changed_at = time.monotonic()
    page = open_page(signed_in=False, **PHONE, locale="ru-RU")
    page.goto("/login")
    wait_login(page)
    fill_sign_in(page, user.email, user.password)
    expect(page).to_have_url(re.compile(r"/two-factor/?$"))
    expect(page.get_by_role("heading", name="Настройте двухфакторный вход")).to_be_visible()
    page.goto("/account")  # nothing else until it is on
    expect(page).to_have_url(re.compile(r"/two-factor/?$"))
    section = page.get_by_test_id("two-factor-section")
    expect(section.get_by_test_id("two-factor-status")).to_have_text(re.compile("^Выключен"))
    expect(section.get_by_test_id("two-factor-on")).to_have_text("Включить")
    section.get_by_test_id("two-factor-on").click()
    expect(section).to_contain_text("Отсканируйте QR-код")
    no_horizontal_overflow(page)  # the secret and the QR code fit a phone
    secret = section.get_by_test_id("two-factor-secret").inner_text().strip()
    fresh_step()
    last = int(time.time()) // 30
    section.get_by_test_id("setup-code").fill(code(secret))
    section.get_by_test_id("two-factor-confirm").click()
    expect(section.get_by_test_id("recovery-codes")).to_contain_text("Коды восстановления")
    no_horizontal_overflow(page)
    page.get_by_test_id("two-factor-continue").click()
    expect(page).to_have_url(HOME)
    wait_live(page)

    # Signing in again asks for the code, in Russian, on the phone.
    page.goto("/account")
    page.get_by_test_id("sign-out").click()
    wait_login(page)
    fill_sign_in(page, user.email, user.password)
    expect(page.get_by_role("heading", name="Введите код")).to_be_visible()
    no_horizontal_overflow(page)
    enter_code(page, "12345")
    expect(page.get_by_test_id("login-error")).to_have_text(
        "Код неверный. Проверьте время на телефоне и попробуйте ещё раз."
    )
    enter_code(page, next_code(secret, last)[0])
    expect(page).to_have_url(HOME)
    open_app(page)

    # The open tab's next event is refused too, once the worker's "not due" answer has expired.
    time.sleep(max(0.0, NOT_DUE_TTL + 0.5 - (time.monotonic() - changed_at)))
    send(chatting, unique("after the policy"))
    expect(chatting).to_have_url(re.compile(r"/two-factor/?$"))
    expect(chatting.get_by_test_id("user-message")).to_have_count(0)

    # A lost phone and lost codes: an admin resets it, and the policy asks for a new set-up at once.
    admin = admin_on_admin_page
    admin.get_by_test_id("two-factor-reset-email").fill(user.email)
    admin.get_by_test_id("two-factor-reset").click()
    expect(admin.get_by_test_id("two-factor-reset-notice")).to_have_text(
        f"Two-factor sign-in is off for {user.email}: they sign in with the password and can turn it on again."
    )
    page.goto("/account")
    expect(page).to_have_url(re.compile(r"/two-factor/?$"))


def test_a_passkey_instead_of_a_code(
    open_page: Callable[..., Page], make_account: Callable[..., Account], base_url: str
) -> None:
    """Chromium's virtual authenticator (DevTools protocol), on http://localhost (an IP cannot be an RP ID)."""
    user = make_account("passkey")
    page = open_page(signed_in=False)
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {"options": {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                     "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}},
    )  # fmt: skip
    site = base_url.replace("//127.0.0.1:", "//localhost:")
    assert site != base_url

    # Two-factor on (a TOTP first: passkeys come on top of it), then a passkey from the account page.
    page.goto(f"{site}/login")
    wait_login(page)
    fill_sign_in(page, user.email, user.password)
    expect(page).to_have_url(home_on(site))
    wait_live(page)
    section = two_factor_section(page, f"{site}/account")
    secret, _, last = turn_on(page, section)
    section.get_by_test_id("passkey-add").click()
    expect(section.get_by_test_id("two-factor-notice")).to_have_text("Passkey added.")
    expect(section.get_by_test_id("passkey-row")).to_have_count(1)
    expect(section.get_by_test_id("passkey-row")).to_contain_text("Passkey 1")
    assert (
        len(cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator["authenticatorId"]})["credentials"])
        == 1
    )
    page.goto(f"{site}/account")
    page.get_by_test_id("sign-out").click()
    wait_login(page)

    # The second step with the passkey: no code typed.
    fill_sign_in(page, user.email, user.password)
    expect(page.get_by_test_id("code-form")).to_be_visible()
    page.get_by_test_id("use-passkey").click()
    expect(page).to_have_url(home_on(site))
    wait_live(page)

    # Removed from the account page, the passkey no longer signs in; a code still does.
    section = two_factor_section(page, f"{site}/account")
    expect(section.get_by_test_id("passkey-row")).to_have_count(1)
    section.get_by_test_id("passkey-delete").click()
    expect(section.get_by_test_id("passkey-row")).to_have_count(0)
    page.get_by_test_id("sign-out").click()
    wait_login(page)
    fill_sign_in(page, user.email, user.password)
    page.get_by_test_id("use-passkey").click()
    expect(page.get_by_test_id("login-error")).to_have_text("This account has no passkey. Enter a code.")
    enter_code(page, next_code(secret, last)[0])
    expect(page).to_have_url(home_on(site))


def home_on(site: str) -> re.Pattern[str]:
    """The chat's URL on `site`."""
    return re.compile("^" + re.escape(site) + "/?$")
