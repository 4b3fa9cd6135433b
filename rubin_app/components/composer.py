"""The message box: Enter (or Ctrl+Enter, a setting) sends, Shift+Enter adds a line, Stop while answering."""

from __future__ import annotations

import reflex as rx

from rubin_app.components import styles
from rubin_app.components.sources import knowledge_chips, knowledge_picker
from rubin_app.state.auth import AuthState
from rubin_app.state.chat import ChatState

T = AuthState.tr


def composer() -> rx.Component:
    """Text area with send/stop, and the error of the last attempt."""
    generating = ChatState.streaming_id != 0
    placeholder = rx.cond(AuthState.send_key == "ctrl", T["placeholder_ctrl"], T["placeholder"])
    return rx.box(
        rx.cond(
            ChatState.draft_error != "",
            rx.callout(
                ChatState.draft_error,
                icon="circle_alert",
                color_scheme="red",
                size="1",
                role="alert",
                data_testid="composer-error",
                margin_bottom="0.5rem",
            ),
        ),
        rx.cond(~ChatState.temporary, knowledge_chips()),  # a temporary chat searches no knowledge
        rx.form(
            rx.hstack(
                rx.cond(
                    ChatState.temporary,
                    rx.el.input(type="hidden", name="temporary", value="1"),  # its send has no key (stream.js)
                    knowledge_picker(),
                ),
                rx.text_area(
                    id="composer",
                    name="text",
                    placeholder=placeholder,
                    aria_label=placeholder,
                    auto_focus=True,
                    rows="1",
                    resize="none",
                    size="3",
                    flex="1",
                    max_height="40dvh",
                    style={"field_sizing": "content"},
                    data_testid="composer",
                ),
                rx.cond(
                    generating,
                    rx.icon_button(
                        rx.icon("square", size=18),
                        type="button",
                        on_click=ChatState.stop,
                        color_scheme="gray",
                        size="3",
                        aria_label=T["stop"],
                        min_width=styles.TOUCH,
                        min_height=styles.TOUCH,
                        data_testid="stop",
                    ),
                    rx.icon_button(
                        rx.icon("arrow_up", size=18),
                        type="submit",
                        size="3",
                        aria_label=T["send"],
                        min_width=styles.TOUCH,
                        min_height=styles.TOUCH,
                        data_testid="send",
                    ),
                ),
                align="end",
                width="100%",
            ),
            on_submit=ChatState.send,
            reset_on_submit=True,  # emptied at once; a refused text is put back (ChatState.send)
            width="100%",
        ),
        width="100%",
        max_width=styles.CONTENT_WIDTH,
        margin_x="auto",
        padding="0.75rem",
        padding_bottom="max(0.75rem, env(safe-area-inset-bottom))",
    )
