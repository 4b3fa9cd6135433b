"""The chat list: new chat, filter, rename, delete. A drawer on phones."""

from __future__ import annotations

import reflex as rx

from rubin_app.components import styles
from rubin_app.state.auth import AuthState
from rubin_app.state.chat import ChatItem, ChatState

T = AuthState.tr


def _item(chat: ChatItem, current: rx.Var[str], rename: rx.Var[str], delete: rx.Var[str]) -> rx.Component:
    active = chat.id == current
    return rx.hstack(
        rx.link(
            rx.text(chat.title, trim="both", white_space="nowrap", overflow="hidden", text_overflow="ellipsis"),
            href="/c/" + chat.id,
            underline="none",
            color=rx.color("gray", 12),
            flex="1",
            min_width="0",
            padding_y="0.6rem",
            data_testid="chat-link",
        ),
        rx.menu.root(
            rx.menu.trigger(
                rx.icon_button(
                    rx.icon("ellipsis", size=16),
                    variant="ghost",
                    color_scheme="gray",
                    aria_label=rename + " / " + delete,
                    min_width=styles.TOUCH,
                    min_height=styles.TOUCH,
                    data_testid="chat-menu",
                ),
            ),
            rx.menu.content(
                rx.menu.item(rename, on_click=ChatState.ask_rename(chat.id, chat.title), data_testid="rename"),
                rx.menu.item(delete, color="red", on_click=ChatState.ask_delete(chat.id), data_testid="delete"),
            ),
        ),
        padding_left="0.75rem",
        border_radius=styles.RADIUS,
        background=rx.cond(active, rx.color("accent", 4), "transparent"),
        _hover={"background": rx.color("gray", 4)},
        width="100%",
        spacing="1",
        align="center",
        data_testid="chat-item",
    )


@rx.memo
def chat_list(
    chats: rx.Var[list[ChatItem]], current: rx.Var[str], rename: rx.Var[str], delete: rx.Var[str]
) -> rx.Component:
    """The chats (React-memoised: every state update of the chat page would otherwise draw the whole
    list again, hundreds of entries for a long-time user, also per answer)."""
    return rx.vstack(rx.foreach(chats, lambda c: _item(c, current, rename, delete)), spacing="1", width="100%")


def sidebar_content() -> rx.Component:
    """New chat, filter and the list."""
    return rx.vstack(
        rx.hstack(
            rx.heading(T["app_name"], size="4"),
            rx.spacer(),
            rx.button(
                rx.icon("square_pen", size=16),
                T["new_chat"],
                on_click=ChatState.new_chat,
                size="2",
                min_height=styles.TOUCH,
                data_testid="new-chat",
            ),
            width="100%",
            align="center",
        ),
        rx.input(
            rx.input.slot(rx.icon("search", size=14)),
            placeholder=T["search_chats"],
            value=ChatState.chat_filter,
            on_change=ChatState.set_chat_filter.debounce(250),
            aria_label=T["search_chats"],
            width="100%",
            size="3",
            data_testid="chat-filter",
        ),
        rx.scroll_area(
            rx.cond(
                ChatState.chats.length() > 0,
                chat_list(
                    chats=ChatState.chats, current=ChatState.conversation_id, rename=T["rename"], delete=T["delete"]
                ),
                rx.text(T["no_chats"], color=styles.muted, size="2", padding="0.5rem"),
            ),
            type="auto",
            scrollbars="vertical",
            flex="1",
            width="100%",
            class_name="rubin-chat-list",
        ),
        height="100%",
        width="100%",
        min_width="0",
        padding="0.75rem",
        spacing="3",
    )


def sidebar() -> rx.Component:
    """Fixed column on wide screens."""
    return rx.box(
        sidebar_content(),
        width=styles.SIDEBAR_WIDTH,
        min_width=styles.SIDEBAR_WIDTH,
        height="100dvh",
        border_right=styles.border,
        background=styles.surface,
        display=["none", "none", "block"],
        class_name="rubin-sidebar",
        data_testid="sidebar",
    )


def drawer() -> rx.Component:
    """The same list as a drawer on phones and tablets."""
    return rx.drawer.root(
        rx.drawer.overlay(z_index="50"),
        rx.drawer.portal(
            rx.drawer.content(
                sidebar_content(),
                width="min(85vw, 20rem)",
                height="100dvh",
                background=styles.panel,
                top="0",
                left="0",
                z_index="60",
                data_testid="drawer",
            ),
        ),
        open=ChatState.drawer_open,
        on_open_change=ChatState.set_drawer_open,
        direction="left",
    )


def dialogs() -> rx.Component:
    """Rename and delete confirmations."""
    return rx.fragment(
        rx.alert_dialog.root(
            rx.alert_dialog.content(
                rx.alert_dialog.title(T["delete_title"]),
                rx.alert_dialog.description(T["delete_body"]),
                rx.hstack(
                    rx.alert_dialog.cancel(
                        rx.button(T["cancel"], variant="soft", color_scheme="gray", on_click=ChatState.close_dialogs)
                    ),
                    rx.alert_dialog.action(
                        rx.button(
                            T["delete"],
                            color_scheme="red",
                            on_click=ChatState.confirm_delete,
                            data_testid="confirm-delete",
                        )
                    ),
                    justify="end",
                    margin_top="1rem",
                ),
            ),
            open=ChatState.delete_id != "",
            on_open_change=ChatState.dialog_open_changed,
        ),
        rx.dialog.root(
            rx.dialog.content(
                rx.dialog.title(T["rename_title"]),
                rx.input(
                    value=ChatState.rename_text,
                    on_change=ChatState.set_rename_text,
                    max_length=200,
                    size="3",
                    data_testid="rename-input",
                ),
                rx.hstack(
                    rx.button(T["cancel"], variant="soft", color_scheme="gray", on_click=ChatState.close_dialogs),
                    rx.button(T["save"], on_click=ChatState.confirm_rename, data_testid="rename-save"),
                    justify="end",
                    margin_top="1rem",
                ),
            ),
            open=ChatState.rename_id != "",
            on_open_change=ChatState.close_dialogs,
        ),
        rx.dialog.root(
            rx.dialog.content(
                rx.dialog.title(T["edit_title"]),
                rx.text_area(
                    value=ChatState.edit_text,
                    on_change=ChatState.set_edit_text,
                    rows="6",
                    width="100%",
                    data_testid="edit-input",
                ),
                rx.hstack(
                    rx.button(T["cancel"], variant="soft", color_scheme="gray", on_click=ChatState.close_dialogs),
                    rx.button(T["edit_send"], on_click=ChatState.save_edit, data_testid="edit-save"),
                    justify="end",
                    margin_top="1rem",
                ),
            ),
            open=ChatState.edit_id != 0,
            on_open_change=ChatState.close_dialogs,
        ),
    )
