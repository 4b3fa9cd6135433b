"""The temporary-chat switch (in the header, next to the chat's title) and the notice a temporary chat shows."""

from __future__ import annotations

import reflex as rx

from rubin_app.components import styles
from rubin_app.state.auth import AuthState
from rubin_app.state.chat import ChatState

T = AuthState.tr


def temporary_toggle() -> rx.Component:
    """Start a temporary chat, or leave it (pressed while on)."""
    label = rx.cond(ChatState.temporary, T["temporary_leave"], T["temporary_start"])
    return rx.tooltip(
        rx.icon_button(
            rx.icon("ghost", size=18),
            on_click=ChatState.toggle_temporary,
            variant=rx.cond(ChatState.temporary, "soft", "ghost"),
            color_scheme=rx.cond(ChatState.temporary, "ruby", "gray"),
            aria_label=label,
            aria_pressed=rx.cond(ChatState.temporary, "true", "false"),
            min_width=styles.TOUCH,
            min_height=styles.TOUCH,
            data_testid="temporary-toggle",
        ),
        content=label,
    )


def temporary_notice() -> rx.Component:
    """What a temporary chat keeps (nothing) and when it disappears."""
    return rx.cond(
        ChatState.temporary,
        rx.callout(
            T["temporary_notice"],
            icon="ghost",
            size="1",
            width="100%",
            max_width=styles.CONTENT_WIDTH,
            margin_x="auto",
            data_testid="temporary-notice",
        ),
    )
