"""The chat page: `/` (new chat) and `/c/[cid]` (a saved conversation)."""

from __future__ import annotations

import reflex as rx

from rubin_app.components import styles
from rubin_app.components.composer import composer
from rubin_app.components.header import header
from rubin_app.components.message import history_message, message
from rubin_app.components.prefs import shortcuts_dialog, theme_appliers
from rubin_app.components.sidebar import dialogs, drawer, sidebar
from rubin_app.components.sources import passage_dialog
from rubin_app.components.temporary import temporary_notice
from rubin_app.state.auth import AuthState
from rubin_app.state.chat import ChatState, MsgView, older_pages, stream_text, stream_think, temporary_pages

T = AuthState.tr


def _welcome() -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.heading(T["welcome_title"], size="7"),
            rx.text(T["welcome_body"], color=styles.muted, text_align="center"),
            rx.flex(  # the picked assistant's starter prompts: a click puts one in the message box
                rx.foreach(
                    ChatState.model_starters,
                    lambda s: rx.button(
                        s,
                        variant="soft",
                        size="2",
                        data_testid="starter",
                        on_click=[rx.set_value("composer", s), rx.set_focus("composer")],
                    ),
                ),
                wrap="wrap",
                gap="2",
                justify="center",
            ),
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


# ---- the conversation (long chats: see state/chat/ and assets/history.js) -----------------------------
# History (the first page, and older pages loaded on scroll) is finished text: it is drawn by memoised
# page components that do not read the streamed answer, so a streamed piece re-renders only the last
# exchange, and a page the browser already shows is never drawn again when an older one arrives.


@rx.memo
def history_page(page: rx.Var[list[MsgView]]) -> rx.Component:
    """A page of finished messages (React-memoised: drawn again only when the page itself changes)."""
    return rx.vstack(rx.foreach(page, history_message), width="100%", spacing="5")


def _older() -> rx.Component:
    """Older pages (newest page first in the list, shown oldest on top) and the top sentinel."""
    pages = older_pages.value.to(list[list[MsgView]])
    return rx.fragment(
        rx.cond(
            ChatState.has_older,
            rx.hstack(
                rx.spinner(size="1"),
                rx.text(T["loading_older"], size="1", color=styles.muted),
                # history.js clicks this when the reader nears the top; it carries the chat shown.
                rx.el.button(
                    on_click=ChatState.load_older(ChatState.conversation_id), id="rubin-older-load", hidden=True
                ),
                id="rubin-older",
                justify="center",
                align="center",
                width="100%",
                data_testid="loading-older",
            ),
        ),
        # Pages are appended as they arrive and shown in reverse, so the ones already drawn keep their
        # place in the list (React keys by index) and are not drawn again.
        rx.flex(
            rx.foreach(pages, lambda p: history_page(page=p)),
            direction="column-reverse",
            gap="var(--space-5)",
            width="100%",
            id="rubin-older-pages",
        ),
    )


def _conversation() -> rx.Component:
    return rx.vstack(
        _older(),
        history_page(page=ChatState.messages),
        history_page(page=ChatState.recent),  # finished since the chat opened: memoised like the history
        # A temporary chat's finished exchanges: in the browser's memory only (state/chat/temporary.py)
        rx.foreach(temporary_pages.value.to(list[list[MsgView]]), lambda p: history_page(page=p)),
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
        rx.cond(
            (ChatState.conversation_id == "")
            & (ChatState.pending.length() == 0)
            & (temporary_pages.value.to(list).length() == 0),
            _welcome(),
            _conversation(),
        ),
    )
    return rx.hstack(
        stream_text,
        stream_think,
        sidebar(),
        drawer(),
        dialogs(),
        shortcuts_dialog(),
        passage_dialog(),
        theme_appliers(),
        rx.vstack(
            header(),
            temporary_notice(),
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
