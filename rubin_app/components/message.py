"""One chat message: Markdown body, status, and its actions."""

from __future__ import annotations

import reflex as rx
from reflex.vars.base import VarData

from rubin_app.components import styles
from rubin_app.components.markdown import lazy_markdown
from rubin_app.components.sources import memory_notes, sources
from rubin_app.state.auth import AuthState
from rubin_app.state.chat import ChatState, MsgView, kept_text, stream_text, stream_think

T = AuthState.tr


def _icon_button(icon: str, label, on_click, test_id: str) -> rx.Component:
    return rx.tooltip(
        rx.icon_button(
            rx.icon(icon, size=16),
            on_click=on_click,
            variant="ghost",
            color_scheme="gray",
            size="2",
            aria_label=label,
            data_testid=test_id,
            min_width=styles.TOUCH,
            min_height=styles.TOUCH,
        ),
        content=label,
    )


def _copy(text) -> rx.Component:
    return _icon_button("copy", T["copy"], [rx.set_clipboard(text), rx.toast(T["copied"], duration=1500)], "copy")


def _status(msg: MsgView) -> rx.Component:
    return rx.cond(
        msg.error != "",
        rx.callout(
            rx.text(
                rx.text.strong(rx.cond(msg.status == "error", T["status_error"], T["status_interrupted"]), ": "),
                T["err_" + msg.error],
                rx.cond(msg.error_detail != "", " (" + msg.error_detail + ")", ""),
            ),
            icon="triangle_alert",
            color_scheme=rx.cond(msg.status == "error", "red", "amber"),
            size="1",
            role="status",
            data_testid="message-error",
            margin_top="0.5rem",
        ),
    )


def _reasoning(text) -> rx.Component:
    return rx.cond(
        text != "",
        rx.el.details(
            rx.el.summary(T["thinking"], cursor="pointer", color=styles.muted),
            rx.text(text, white_space="pre-wrap", color=styles.muted, size="2"),
            margin_bottom="0.5rem",
        ),
    )


def _answer_text(msg: MsgView) -> rx.Var:
    """An answer's text: its own, or (an answer this tab streamed) the copy the browser kept (assets/stream.js)."""
    kept_map, key = kept_text.value, msg.id
    kept = rx.Var(
        _js_expr=f"({kept_map!s}?.[{key!s}] ?? '')",
        _var_data=VarData.merge(kept_map._get_all_var_data(), key._get_all_var_data()),
    ).to(str)
    return rx.cond(msg.kept, kept, msg.content).to(str)


def _live_body() -> rx.Component:
    return rx.box(
        _reasoning(stream_think.value),
        lazy_markdown(stream_text.value),
        rx.hstack(rx.spinner(size="1"), rx.text(T["generating"], size="1", color=styles.muted), align="center"),
        data_testid="streaming-answer",
    )


def _assistant_body(msg: MsgView) -> rx.Component:
    return rx.cond(msg.id == ChatState.streaming_id, _live_body(), _finished_body(msg, _answer_text(msg)))


def _finished_body(msg: MsgView, text: rx.Var | str) -> rx.Component:
    return rx.box(_reasoning(msg.reasoning), lazy_markdown(text), _status(msg), sources(msg), memory_notes(msg))


def user_message(msg: MsgView, editable: bool) -> rx.Component:
    """A user's message, right-aligned."""
    return rx.flex(
        rx.box(
            rx.text(msg.content, white_space="pre-wrap", overflow_wrap="anywhere"),
            background=rx.color("accent", 3),
            padding="0.6rem 0.9rem",
            border_radius=styles.RADIUS,
            max_width="85%",
        ),
        rx.hstack(
            _copy(msg.content),
            rx.cond(editable, _icon_button("pencil", T["edit"], ChatState.start_edit(msg.id, msg.content), "edit")),
            spacing="1",
        ),
        direction="column",
        align="end",
        width="100%",
        data_testid="user-message",
    )


def assistant_message(msg: MsgView, last: bool) -> rx.Component:
    """An answer: Markdown, status and actions."""
    idle = (ChatState.streaming_id == 0) & ~ChatState.temporary  # a temporary answer cannot be regenerated
    return rx.box(
        _assistant_body(msg),
        rx.cond(
            msg.id != ChatState.streaming_id,
            rx.hstack(
                _copy(_answer_text(msg)),
                rx.cond(
                    last & idle,
                    rx.cond(
                        msg.status == "complete",
                        _icon_button("refresh_cw", T["regenerate"], ChatState.regenerate, "regenerate"),
                        rx.button(
                            rx.icon("rotate_ccw", size=16),
                            T["retry"],
                            on_click=ChatState.regenerate,
                            variant="soft",
                            size="2",
                            min_height=styles.TOUCH,
                            data_testid="retry",
                        ),
                    ),
                ),
                rx.text(msg.stats, size="1", color=styles.muted),
                spacing="1",
                align="center",
            ),
        ),
        width="100%",
        data_testid="assistant-message",
        data_status=msg.status,
    )


def message(msg: MsgView, in_tail: bool = False) -> rx.Component:
    """A message of either role."""
    return rx.cond(
        msg.role == "user",
        user_message(msg, editable=in_tail & ~ChatState.temporary),  # nor a temporary question edited
        assistant_message(msg, last=in_tail),
    )


def pending_message(msg: MsgView) -> rx.Component:
    """The exchange just sent, as the browser shows it until it is saved (assets/stream.js): the question, and the
    answer streaming in."""
    return rx.cond(
        msg.role == "user",
        user_message(msg, editable=False),
        rx.box(_live_body(), width="100%", data_testid="assistant-message", data_status="streaming"),
    )


def history_message(msg: MsgView) -> rx.Component:
    """A finished message of the history: text, Copy, its sources and memory notes. It reads no state var (only
    event handlers), so a page of them can be memoised (pages/chat.py `history_page`) and is never drawn again while
    an answer streams."""
    return rx.box(
        rx.cond(
            msg.role == "user",
            user_message(msg, editable=False),
            rx.box(
                _finished_body(msg, msg.content),
                rx.hstack(
                    _copy(msg.content), rx.text(msg.stats, size="1", color=styles.muted), spacing="1", align="center"
                ),
                width="100%",
                data_testid="assistant-message",
                data_status=msg.status,
            ),
        ),
        width="100%",
        class_name="rubin-hist",  # history.js lets the browser skip layout and paint of those far from the view
    )
