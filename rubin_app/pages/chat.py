"""The chat page: `/` (new chat) and `/c/[cid]` (a saved conversation)."""

from __future__ import annotations

import reflex as rx

from rubin_app.components import styles
from rubin_app.components.composer import composer
from rubin_app.components.header import header
from rubin_app.components.message import message
from rubin_app.components.prefs import shortcuts_dialog, theme_appliers
from rubin_app.components.sidebar import dialogs, drawer, sidebar
from rubin_app.state.auth import AuthState
from rubin_app.state.chat import ChatState, stream_text, stream_think

T = AuthState.tr


def _welcome() -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.heading(T["welcome_title"], size="7"),
            rx.text(T["welcome_body"], color=styles.muted, text_align="center"),
            align="center",
            max_width="32rem",
            padding="1rem",
        ),
        height="100%",
    )


def _not_found() -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.heading(T["not_found_title"], size="6"),
            rx.text(T["err_conversation_not_found"], color=styles.muted),
            rx.button(T["new_chat"], on_click=ChatState.new_chat),
            align="center",
        ),
        height="100%",
        data_testid="not-found",
    )


def _conversation() -> rx.Component:
    return rx.vstack(
        rx.foreach(ChatState.messages, lambda m: message(m)),
        rx.foreach(ChatState.recent, lambda m: message(m)),
        rx.foreach(ChatState.tail, lambda m: message(m, in_tail=True)),
        rx.foreach(ChatState.pending, lambda m: message(m)),
        width="100%",
        max_width=styles.CONTENT_WIDTH,
        margin_x="auto",
        padding="1rem 0.75rem 2rem",
        spacing="5",
        data_testid="conversation",
    )


def chat_page() -> rx.Component:
    """Sidebar + conversation + composer, filling the dynamic viewport."""
    body = rx.cond(
        ChatState.not_found,
        _not_found(),
        rx.cond((ChatState.conversation_id == "") & (ChatState.pending.length() == 0), _welcome(), _conversation()),
    )
    return rx.hstack(
        stream_text,
        stream_think,
        sidebar(),
        drawer(),
        dialogs(),
        shortcuts_dialog(),
        theme_appliers(),
        rx.vstack(
            header(),
            rx.box(body, id="rubin-scroll", flex="1", width="100%", overflow_y="auto", overflow_x="hidden"),
            composer(),
            height="100dvh",
            flex="1",
            min_width="0",
            spacing="0",
        ),
        spacing="0",
        width="100%",
        height="100dvh",
        overflow="hidden",
    )
