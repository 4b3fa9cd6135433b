"""Theme without a flash, every hotkey and its help dialog, keyboard focus, accessibility (axe-core),
and screenshots of the main pages at phone, tablet and desktop sizes in both themes and languages.

The screenshots are left in test-artifacts/screens/ for people to look at.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from .conftest import ROOT
from .helpers import (
    Account,
    ask,
    chat_id,
    no_horizontal_overflow,
    open_app,
    open_settings,
    send,
    unique,
    wait_live,
    wait_login,
    wait_partial,
    wait_status,
)

SCREENS = ROOT / "test-artifacts" / "screens"
AXE = ROOT / ".tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
    "tablet": {"viewport": {"width": 820, "height": 1180}, "is_mobile": True, "has_touch": True},
    "desktop": {"viewport": {"width": 1440, "height": 900}},
}
# Recorded by an init script when <body> first appears: nothing can be painted before that moment, so
# the class <html> has then is the theme of the first paint.
FIRST_PAINT_PROBE = """
new MutationObserver(function (changes, observer) {
  if (document.body) {
    window.__firstPaintTheme = document.documentElement.className;
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
"""


def _html_theme(page: Page) -> str:
    return page.evaluate("() => document.documentElement.classList.contains('dark') ? 'dark' : 'light'")


def _set_theme(page: Page, value: str) -> None:
    panel = open_settings(page)
    panel.get_by_test_id("theme-switch").get_by_role("radio").nth(["system", "light", "dark"].index(value)).click()
    page.keyboard.press("Escape")


# --------------------------------------------------------------------------- theme


def test_theme_is_saved_per_user_and_painted_right_from_the_start(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    account = make_account("theme")
    page = open_page(account, color_scheme="light")
    page.add_init_script(FIRST_PAINT_PROBE)
    open_app(page)
    assert _html_theme(page) == "light"  # "follow the system", and the system is light

    _set_theme(page, "dark")
    expect(page.locator("html")).to_have_class("dark")
    page.reload()
    wait_live(page)
    assert page.evaluate("() => window.__firstPaintTheme") == "dark"  # no light flash before React starts
    assert _html_theme(page) == "dark"

    # Another device (fresh browser storage) gets the account's theme once signed in, and paints it
    # from the first frame on its next load.
    other = open_page(account, color_scheme="light")
    other.add_init_script(FIRST_PAINT_PROBE)
    open_app(other)
    expect(other.locator("html")).to_have_class("dark")
    other.reload()
    wait_live(other)
    assert other.evaluate("() => window.__firstPaintTheme") == "dark"

    # "Follow the system": a dark system gives the dark theme.
    _set_theme(page, "system")
    dark_system = open_page(account, color_scheme="dark")
    dark_system.add_init_script(FIRST_PAINT_PROBE)
    open_app(dark_system)
    dark_system.reload()
    wait_live(dark_system)
    assert dark_system.evaluate("() => window.__firstPaintTheme") == "dark"
    assert _html_theme(page) == "light"


# --------------------------------------------------------------------------- hotkeys


def test_help_dialog_lists_every_hotkey_and_keys_do_not_fire_while_typing(page: Page) -> None:
    open_app(page)
    page.locator("body").click(position={"x": 700, "y": 400})
    page.keyboard.press("?")
    dialog = page.get_by_test_id("hotkeys-dialog")
    expect(dialog).to_be_visible()
    for keys, what in [
        ("Ctrl+Shift+O", "New chat"),
        ("/", "Focus the message box"),
        ("Esc", "Stop the answer"),
        ("Ctrl+K", "Search chats"),
        ("Ctrl+Shift+S", "Show or hide the chat list"),
        ("Ctrl+Shift+C", "Copy the last answer"),
        ("?", "This list"),
    ]:
        expect(dialog.locator("tr").filter(has_text=what)).to_contain_text(keys)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # "/" focuses the message box; typed there, "?" and "/" are just text.
    page.keyboard.press("/")
    composer = page.get_by_test_id("composer")
    expect(composer).to_be_focused()
    page.keyboard.type("what? a/b")
    expect(composer).to_have_value("what? a/b")
    expect(dialog).to_be_hidden()

    # The settings menu opens the same dialog.
    open_settings(page).get_by_test_id("open-hotkeys").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")


def test_hotkeys_new_chat_search_sidebar_copy_and_stop(open_page: Callable[..., Page]) -> None:
    page = open_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_app(page)
    word = unique("hotkey")
    ask(page, f"{word} [[reply=The answer to copy {word}.]]")
    cid = chat_id(page)

    page.keyboard.press("Control+Shift+C")
    expect(page.get_by_text("Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == f"The answer to copy {word}."

    page.keyboard.press("Control+k")
    expect(page.get_by_test_id("sidebar").get_by_test_id("chat-filter")).to_be_focused()
    page.keyboard.press("Escape")

    page.keyboard.press("Control+Shift+S")
    expect(page.get_by_test_id("sidebar")).to_be_hidden()
    page.reload()
    wait_live(page)
    expect(page.get_by_test_id("sidebar")).to_be_hidden()  # remembered
    page.keyboard.press("Control+Shift+S")
    expect(page.get_by_test_id("sidebar")).to_be_visible()

    page.keyboard.press("Control+Shift+O")
    page.wait_for_url(lambda url: f"/c/{cid}" not in url)
    expect(page.get_by_test_id("user-message")).to_have_count(0)

    # Esc stops a running answer; what came so far is kept.
    send(page, f"{unique('stopme')} [[tokens=400]] [[rate=20]]")
    wait_partial(page, "", min_chars=5)
    page.get_by_test_id("composer").press("Escape")
    wait_status(page, "interrupted")


def test_ctrl_enter_setting(open_page: Callable[..., Page], make_account: Callable[..., Account]) -> None:
    page = open_page(make_account("sendkey"))
    open_app(page)
    composer = page.get_by_test_id("composer")
    composer.click()
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    expect(composer).to_have_value("line one\nline two")
    composer.fill("")

    open_settings(page).get_by_test_id("send-ctrl").click()
    page.keyboard.press("Escape")
    expect(composer).to_have_attribute("placeholder", "Message Rubin…  (Ctrl+Enter to send)")
    word = unique("ctrl")
    composer.click()
    page.keyboard.type(f"{word} first")
    page.keyboard.press("Enter")  # a new line now
    page.keyboard.type("second [[reply=Got both lines.]]")
    expect(page.get_by_test_id("user-message")).to_have_count(0)
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("user-message")).to_contain_text(f"{word} first")
    wait_status(page, "complete")
    page.reload()
    wait_live(page)
    expect(page.get_by_test_id("composer")).to_have_attribute("placeholder", "Message Rubin…  (Ctrl+Enter to send)")


# --------------------------------------------------------------------------- keyboard and axe


def _axe_violations(page: Page) -> list[str]:
    # Through DevTools, not a <script> tag: the app's Content-Security-Policy (rightly) refuses inline scripts.
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    found = page.evaluate(
        """async () => {
          const result = await axe.run(document, {resultTypes: ["violations"]});
          return result.violations
            .filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => `${v.impact} ${v.id}: ${v.help} -> ` +
                      v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(" | "));
        }"""
    )
    return list(found)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_problems(
    open_page: Callable[..., Page], make_account: Callable[..., Account], admin_account: Account, scheme: str
) -> None:
    account = make_account(f"axe{scheme}")
    page = open_page(account, color_scheme=scheme)
    open_app(page)
    ask(page, f"{unique('axe')} [[reply=Some **bold** text, a [link](https://example.com) and `code`.]]")
    problems = {"chat": _axe_violations(page)}
    page.goto("/account")
    expect(page.get_by_test_id("account-theme")).to_be_visible()
    problems["account"] = _axe_violations(page)
    page.goto("/assistants")  # with the editor open: every field of an assistant
    page.get_by_test_id("assistant-new").click()
    expect(page.get_by_test_id("assistant-editor")).to_be_visible()
    problems["assistants"] = _axe_violations(page)
    anonymous = open_page(signed_in=False, color_scheme=scheme)
    anonymous.goto("/login")
    wait_login(anonymous)
    problems["login"] = _axe_violations(anonymous)
    admin = open_page(admin_account, color_scheme=scheme)
    admin.goto("/admin")
    expect(admin.get_by_test_id("user-row").first).to_be_visible()
    expect(admin.get_by_test_id("audit-row").first).to_be_visible()
    problems["admin"] = _axe_violations(admin)
    assert {k: v for k, v in problems.items() if v} == {}


def test_every_control_is_reachable_by_keyboard_with_visible_focus(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    page = open_page(make_account("keys"))  # a known chat list: the walk below covers the whole page
    open_app(page)
    ask(page, f"{unique('tab')} [[reply=An answer with its own buttons.]]")
    wanted = {
        "new-chat", "chat-filter", "chat-link", "chat-menu", "toggle-sidebar", "model-select", "settings-menu",
        "user-menu", "composer", "copy", "regenerate",
    }  # fmt: skip
    reached: set[str] = set()
    page.locator("body").click(position={"x": 700, "y": 300})
    # Tab through one whole round of the page (until focus comes back to a control it already visited).
    for _ in range(300):
        page.keyboard.press("Tab")
        info = page.evaluate(
            """() => {
              const el = document.activeElement;
              if (!el || el === document.body) return null;
              if (el.__rubinTabbed) return {again: true};
              el.__rubinTabbed = true;
              const holder = el.closest("[data-testid]");
              // The ring is on the control or on its frame (Radix draws a text field's ring on its root).
              const ringed = (node) => {
                const s = getComputedStyle(node);
                return (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== "none";
              };
              const ring = [el, el.parentElement, el.parentElement && el.parentElement.parentElement]
                .some(node => node && ringed(node));
              return {id: el.dataset.testid || (holder && holder.dataset.testid) || el.tagName, ring: ring};
            }"""
        )
        if info is None:
            continue
        if info.get("again"):
            break
        assert info["ring"], f"{info['id']} has no visible focus indicator"
        reached.add(info["id"])
    assert wanted <= reached, f"not reachable by Tab: {wanted - reached}"


# --------------------------------------------------------------------------- screenshots


def _shoot(page: Page, name: str) -> None:
    no_horizontal_overflow(page)
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"))


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_at_every_size(
    open_page: Callable[..., Page], make_account: Callable[..., Account], scheme: str, lang: str
) -> None:
    account = make_account(f"shots{scheme}{lang}")
    locale = {"en": "en-US", "ru": "ru-RU"}[lang]
    for size, args in SIZES.items():
        page = open_page(account, color_scheme=scheme, locale=locale, **args)
        open_app(page)
        if size == "desktop":
            ask(page, f"{unique('shot')} [[reply=" + SAMPLE + "]] [[rate=400]]")
        else:
            links = page.get_by_test_id("chat-link")
            if size != "phone" and links.count():
                links.first.click()
                expect(page.get_by_test_id("assistant-message").first).to_be_visible()
        tag = f"{size}-{scheme}-{lang}"
        _shoot(page, f"chat-{tag}")
        if size == "phone":
            page.get_by_test_id("open-drawer").tap()
            expect(page.get_by_test_id("drawer")).to_be_visible()
            _shoot(page, f"drawer-{tag}")
            page.keyboard.press("Escape")
            expect(page.get_by_test_id("drawer")).to_be_hidden()
        open_settings(page)
        _shoot(page, f"settings-{tag}")
        page.keyboard.press("Escape")
        page.goto("/account")
        expect(page.get_by_test_id("account-theme")).to_be_visible()
        _shoot(page, f"account-{tag}")
        anonymous = open_page(signed_in=False, color_scheme=scheme, locale=locale, **args)
        anonymous.goto("/login")
        wait_login(anonymous)
        _shoot(anonymous, f"login-{tag}")
        anonymous.context.close()
        page.context.close()
    assert len(list(SCREENS.glob(f"*-{scheme}-{lang}.png"))) == 3 * 4 + 1


SAMPLE = """Here is a table and some code:

| name | value |
|---|---|
| alpha | 1 |
| beta | 2 |

```python
print("a long line of code that must scroll inside its own box and never widen the page at any size")
```"""
