"""The chat page: `/` (new chat) and `/c/[cid]` (a saved conversation)."""

from __future__ import annotations

import reflex as rx
from reflex.utils.imports import ImportVar
from reflex.vars.base import Var, VarData

from rubin_app.components import styles
from rubin_app.components.composer import composer
from rubin_app.components.header import header
from rubin_app.components.message import history_message, message, pending_message
from rubin_app.components.prefs import shortcuts_dialog, theme_appliers
from rubin_app.components.sidebar import dialogs, drawer, sidebar
from rubin_app.components.sources import passage_dialog
from rubin_app.components.temporary import temporary_notice
from rubin_app.state.auth import AuthState
from rubin_app.state.chat import (
    ChatState,
    MsgView,
    kept_text,
    older_pages,
    pending_exchange,
    recent_pages,
    stream_text,
    stream_think,
    temporary_pages,
)

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


def _deferred(page: rx.Var[list[MsgView]]) -> rx.Var[list[MsgView]]:
    """`page` through React's useDeferredValue: drawn after the rest of the update is on screen, and empty
    until then (never the last chat's messages, or the last account's, above the new chat's last exchange)."""
    return Var(
        _js_expr="deferredPage",
        _var_type=list[MsgView],
        _var_data=VarData(
            hooks={
                f"const deferredPage = ((current, late) => (late === current ? current : []))"
                f"({page!s}, useDeferredValue({page!s}, []))": None
            },
            imports={"react": [ImportVar(tag="useDeferredValue")]},
        ),
    ).to(list[MsgView])


@rx.memo
def opening_page(page: rx.Var[list[MsgView]]) -> rx.Component:
    """The page a chat opens with, drawn newest first: its last exchange (`tail`) shows at once, and these
    messages above it right after, in a render React may split and interrupt (no long task). Opening
    another chat empties it at once, in the same update."""
    return rx.vstack(rx.foreach(_deferred(page), history_message), width="100%", spacing="5")


def _older() -> rx.Component:
    """Older pages (newest page first in the list, shown oldest on top) and the top sentinel."""
    pages = older_pages.value.to(list[list[MsgView]])
    return rx.fragment(
        # The "Loading earlier messages" row keeps its place once a page came in: it empties with the last
        # page rather than going, so the messages below do not move up under the reader.
        rx.cond(
            ChatState.has_older | (pages.length() > 0),
            rx.flex(
                rx.cond(
                    ChatState.has_older,
                    rx.hstack(
                        rx.spinner(size="1"),
                        rx.text(T["loading_older"], size="1", color=styles.muted),
                        # history.js clicks this when the reader nears the top; it carries the chat shown.
                        rx.el.button(
                            on_click=ChatState.load_older(ChatState.conversation_id),
                            id="rubin-older-load",
                            hidden=True,
                        ),
                        justify="center",
                        align="center",
                        width="100%",
                        data_testid="loading-older",
                    ),
                ),
                id="rubin-older",
                min_height="1.5rem",
                width="100%",
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
        opening_page(page=ChatState.messages),
        # Finished since the chat opened: the browser's copies, one page per exchange (assets/stream.js "f")
        rx.foreach(recent_pages.value.to(list[list[MsgView]]), lambda p: history_page(page=p)),
        # A temporary chat's finished exchanges: in the browser's memory only (state/chat/temporary.py)
        rx.foreach(temporary_pages.value.to(list[list[MsgView]]), lambda p: history_page(page=p)),
        rx.foreach(ChatState.tail, lambda m: message(m, in_tail=True)),
        # The exchange just sent, until it is saved: the browser's own (assets/stream.js)
        rx.foreach(pending_exchange.value.to(list[MsgView]), pending_message),
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
            & (pending_exchange.value.to(list).length() == 0)
            & (temporary_pages.value.to(list).length() == 0),
            _welcome(),
            _conversation(),
        ),
    )
    return rx.hstack(
        stream_text,
        stream_think,
        kept_text,
        recent_pages,
        pending_exchange,
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
