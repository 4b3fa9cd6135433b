"""The interface follows the browser's language and can be switched."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from .helpers import Account, ask, open_app, open_settings, pick_language, unique, wait_live


def test_russian_browser_gets_russian_ui_and_can_switch(
    open_page: Callable[..., Page], make_account: Callable[..., Account]
) -> None:
    account = make_account("lang")  # the choice is saved to the account: keep it away from other tests
    page = open_page(account, locale="ru-RU")
    open_app(page)
    expect(page.get_by_test_id("new-chat")).to_have_text("Новый чат")
    expect(page.get_by_test_id("composer")).to_have_attribute(
        "placeholder", "Сообщение для Rubin…  (Enter — отправить, Shift+Enter — новая строка)"
    )
    expect(page.get_by_test_id("chat-filter")).to_have_attribute("placeholder", "Фильтр чатов по названию")
    expect(page.get_by_role("heading", name="Чем помочь?")).to_be_visible()
    expect(open_settings(page).get_by_test_id("language")).to_have_text("Русский")
    page.keyboard.press("Escape")

    # Errors are explained in the interface language too.
    answer = ask(page, f"{unique('busy')} [[fault=http503]]", status="error")
    expect(answer.get_by_test_id("message-error")).to_contain_text("Ошибка")
    expect(answer.get_by_test_id("message-error")).to_contain_text("LocalAI перегружен")
    expect(answer.get_by_test_id("retry")).to_have_text("Повторить")

    pick_language(page, "English")
    expect(page.get_by_test_id("new-chat")).to_have_text("New chat")
    expect(page.get_by_test_id("retry")).to_have_text("Retry")
    expect(page.get_by_test_id("composer")).to_have_attribute(
        "placeholder", "Message Rubin…  (Enter to send, Shift+Enter for a new line)"
    )

    # The choice is remembered over the browser's language.
    page.reload()
    wait_live(page)
    expect(page.get_by_test_id("new-chat")).to_have_text("New chat")
    expect(open_settings(page).get_by_test_id("language")).to_have_text("English")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("message-error")).to_contain_text("overloaded")

    # ... and it is the account's: another device with a Russian browser gets English too.
    other = open_page(account, locale="ru-RU")
    open_app(other)
    expect(other.get_by_test_id("new-chat")).to_have_text("New chat")
