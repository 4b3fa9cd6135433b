"""Top bar: drawer button (phones), title, model picker, settings (theme, language, keys) and the user menu."""

from __future__ import annotations

import reflex as rx

from rubin_app.components import styles
from rubin_app.components.auth_forms import native_form
from rubin_app.components.prefs import settings_menu
from rubin_app.components.temporary import temporary_toggle
from rubin_app.state.auth import AuthState
from rubin_app.state.chat import ChatState
from rubin_app.state.chat.picker import ModelGroup, ModelOption

T = AuthState.tr


def _model_option(option: ModelOption) -> rx.Component:
    return rx.select.item(
        option.name,
        rx.foreach(option.badges, lambda b: rx.badge(b, size="1", variant="soft", margin_left="0.4em")),
        value=option.name,
    )


def _model_group(group: ModelGroup) -> rx.Component:
    """One connection's models; its name only when there are several connections (one looks as it always did)."""
    return rx.select.group(
        rx.cond(
            ChatState.model_groups.length() > 1,
            rx.select.label(
                group.label,
                color=rx.cond(group.unreachable, "var(--amber-11)", styles.muted),
                data_testid=rx.cond(group.unreachable, "model-group-unreachable", "model-group"),
            ),
        ),
        rx.foreach(group.models, _model_option),
    )


def model_picker() -> rx.Component:
    """Select a model of any connection (grouped by connection, unreachable ones marked), with a refresh button."""
    return rx.hstack(
        rx.cond(
            ChatState.models.length() > 0,
            rx.select.root(
                rx.select.trigger(aria_label=T["model"], data_testid="model-select"),
                rx.select.content(rx.foreach(ChatState.model_groups, _model_group)),
                value=ChatState.model,
                on_change=ChatState.set_model,
                size="2",
            ),
            rx.badge(
                T["models_unavailable"], color_scheme="amber", data_testid="models-error", title=ChatState.models_error
            ),
        ),
        rx.tooltip(
            rx.icon_button(
                rx.icon("refresh_cw", size=14),
                on_click=ChatState.refresh_models,
                variant="ghost",
                color_scheme="gray",
                aria_label=T["refresh_models"],
                min_width=styles.TOUCH,
                min_height=styles.TOUCH,
                data_testid="refresh-models",
            ),
            content=T["refresh_models"],
        ),
        align="center",
        spacing="1",
    )


def user_menu() -> rx.Component:
    """Account, admin and sign-out (a hidden POST form: the server clears the HttpOnly cookie)."""
    return rx.fragment(
        native_form(action="/auth/logout", method="post", id="rubin-sign-out", display="none"),
        rx.menu.root(
            rx.menu.trigger(
                rx.icon_button(
                    rx.icon("circle_user_round", size=20),
                    variant="ghost",
                    color_scheme="gray",
                    aria_label=T["user_menu"],
                    min_width=styles.TOUCH,
                    min_height=styles.TOUCH,
                    data_testid="user-menu",
                ),
            ),
            rx.menu.content(
                rx.box(rx.text(AuthState.user_email, size="1", color=styles.muted), padding="0.25rem 0.75rem"),
                rx.menu.item(T["account"], on_click=rx.redirect("/account"), data_testid="menu-account"),
                rx.menu.item(T["knowledge"], on_click=rx.redirect("/knowledge"), data_testid="menu-knowledge"),
                rx.menu.item(T["assistants"], on_click=rx.redirect("/assistants"), data_testid="menu-assistants"),
                rx.cond(
                    AuthState.is_admin,
                    rx.menu.item(T["admin"], on_click=rx.redirect("/admin"), data_testid="menu-admin"),
                ),
                rx.menu.separator(),
                rx.menu.item(
                    T["sign_out"],
                    on_click=rx.call_script("document.getElementById('rubin-sign-out').submit()"),
                    data_testid="menu-sign-out",
                ),
            ),
        ),
    )


def header() -> rx.Component:
    """The bar above the conversation."""
    return rx.hstack(
        rx.icon_button(
            rx.icon("menu", size=20),
            on_click=ChatState.toggle_drawer,
            variant="ghost",
            color_scheme="gray",
            aria_label=T["menu"],
            min_width=styles.TOUCH,
            min_height=styles.TOUCH,
            display=["flex", "flex", "none"],
            data_testid="open-drawer",
        ),
        rx.icon_button(
            rx.icon("panel_left", size=20),
            on_click=rx.call_script("window.rubin.toggleSidebar()"),
            variant="ghost",
            color_scheme="gray",
            aria_label=T["hk_sidebar"],
            title=T["hk_sidebar"],
            min_width=styles.TOUCH,
            min_height=styles.TOUCH,
            display=["none", "none", "flex"],
            data_testid="toggle-sidebar",
        ),
        rx.text(
            rx.cond(ChatState.temporary, T["temporary_chat"], ChatState.title),
            weight="medium",
            trim="both",
            white_space="nowrap",
            overflow="hidden",
            text_overflow="ellipsis",
            flex="1",
            min_width="0",
            data_testid="chat-title",
        ),
        temporary_toggle(),  # a chat saved nowhere (components/temporary.py)
        model_picker(),
        settings_menu(),
        user_menu(),
        width="100%",
        padding="0.5rem 0.75rem",
        border_bottom=styles.border,
        align="center",
        spacing="2",
    )
