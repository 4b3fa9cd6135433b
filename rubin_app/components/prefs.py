"""Interface preferences every page can show: language, theme, the send key, the shortcuts list."""

from __future__ import annotations

import reflex as rx

from rubin_app import i18n
from rubin_app.components import styles
from rubin_app.state.auth import AuthState

T = AuthState.tr

# (keys, catalog key of what they do), in the order the help dialog lists them. rubin.js implements them
# (Ctrl is ⌘ on a Mac); the letter keys follow ChatGPT's, which many users already know.
HOTKEYS: list[tuple[str, str]] = [
    ("Ctrl+Shift+O", "hk_new_chat"),
    ("/", "hk_focus_input"),
    ("Enter", "hk_send"),
    ("Shift+Enter", "hk_newline"),
    ("Esc", "hk_stop"),
    ("Ctrl+K", "hk_search"),
    ("Ctrl+Shift+S", "hk_sidebar"),
    ("Ctrl+Shift+C", "hk_copy_last"),
    ("?", "hk_help"),
]


def language_select(size: str = "2") -> rx.Component:
    """Pick the interface language (saved to the account when signed in)."""
    return rx.select.root(
        rx.select.trigger(aria_label=T["language"], data_testid="language", min_height=styles.TOUCH),
        rx.select.content(*(rx.select.item(name, value=code) for code, name in i18n.LANGUAGE_NAMES.items())),
        value=rx.cond(AuthState.lang != "", AuthState.lang, i18n.DEFAULT_LANGUAGE),
        on_change=AuthState.set_language,
        size=size,
    )


def theme_switch() -> rx.Component:
    """System / light / dark, applied at once and saved to the account."""
    return rx.segmented_control.root(
        rx.segmented_control.item(rx.icon("monitor", size=14), value="system", aria_label=T["theme_system"]),
        rx.segmented_control.item(rx.icon("sun", size=14), value="light", aria_label=T["theme_light"]),
        rx.segmented_control.item(rx.icon("moon", size=14), value="dark", aria_label=T["theme_dark"]),
        value=rx.style.color_mode,
        on_change=lambda v: [rx.style.set_color_mode(v), AuthState.save_theme(v)],
        data_testid="theme-switch",
    )


def theme_appliers() -> rx.Component:
    """Hidden buttons that set Reflex's colour mode; the server clicks one to apply the account's theme
    on a device that had another (`AuthState._enter`). A backend event cannot call the colour-mode hook."""
    return rx.fragment(
        *(
            rx.el.button(
                id=f"rubin-theme-{mode}",
                on_click=rx.style.set_color_mode(mode),
                tab_index=-1,
                aria_hidden="true",
                display="none",
            )
            for mode in ("system", "light", "dark")
        )
    )


def _row(label: rx.Var | str, control: rx.Component) -> rx.Component:
    return rx.hstack(rx.text(label, size="2", flex="1"), control, align="center", width="100%", spacing="3")


def shortcuts_dialog() -> rx.Component:
    """The "?" dialog: every hotkey. Opened by its (hidden) trigger from rubin.js or the settings menu."""
    return rx.dialog.root(
        rx.dialog.trigger(rx.el.button(id="rubin-hotkeys-open", tab_index=-1, aria_hidden="true", display="none")),
        rx.dialog.content(
            rx.dialog.title(T["hk_title"]),
            rx.el.table(
                rx.el.tbody(
                    *(
                        rx.el.tr(
                            rx.el.td(rx.el.kbd(keys), padding="0.35rem 1rem 0.35rem 0", white_space="nowrap"),
                            rx.el.td(rx.text(T[key], size="2"), padding="0.35rem 0"),
                        )
                        for keys, key in HOTKEYS
                    )
                ),
                width="100%",
            ),
            rx.text(T["hk_send_ctrl_note"], size="1", color=styles.muted, margin_top="0.75rem"),
            rx.flex(rx.dialog.close(rx.button(T["close"], variant="soft")), justify="end", margin_top="1rem"),
            max_width="28rem",
            data_testid="hotkeys-dialog",
        ),
    )


def settings_menu() -> rx.Component:
    """The gear in the header: theme, language, send key, shortcuts."""
    return rx.popover.root(
        rx.popover.trigger(
            rx.icon_button(
                rx.icon("settings", size=18),
                variant="ghost",
                color_scheme="gray",
                aria_label=T["settings"],
                min_width=styles.TOUCH,
                min_height=styles.TOUCH,
                data_testid="settings-menu",
            ),
        ),
        rx.popover.content(
            rx.vstack(
                _row(T["theme_label"], theme_switch()),
                _row(T["language"], language_select()),
                _row(
                    T["send_with_ctrl"],
                    rx.switch(
                        checked=AuthState.send_key == "ctrl",
                        on_change=AuthState.set_send_with_ctrl,
                        aria_label=T["send_with_ctrl"],
                        data_testid="send-ctrl",
                    ),
                ),
                rx.button(
                    rx.icon("keyboard", size=16),
                    T["hk_title"],
                    variant="soft",
                    color_scheme="gray",
                    width="100%",
                    min_height=styles.TOUCH,
                    on_click=rx.call_script("document.getElementById('rubin-hotkeys-open').click()"),
                    data_testid="open-hotkeys",
                ),
                spacing="3",
                width="17rem",
                max_width="calc(100vw - 2rem)",
            ),
            align="end",
        ),
    )
