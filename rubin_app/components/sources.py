"""An answer's numbered sources (click one: its passage opens highlighted), the "memory updated" note with Undo,
the passage dialog, and the "#" knowledge picker of the composer."""

from __future__ import annotations

import reflex as rx

from rubin_app.components import styles
from rubin_app.state.auth import AuthState
from rubin_app.state.chat import ChatState
from rubin_app.state.chat.common import MemoryView, MsgView, SourceView

T = AuthState.tr


def _source(source: SourceView) -> rx.Component:
    return rx.button(
        rx.text.strong(f"[{source.n}]"),
        rx.text(source.label, trim="both", overflow="hidden", text_overflow="ellipsis", white_space="nowrap"),
        on_click=ChatState.open_passage(source.chunk_id, source.file_id, source.label, source.text),
        variant=rx.cond(source.cited, "soft", "outline"),
        color_scheme="gray",
        size="1",
        max_width="100%",
        min_height=styles.TOUCH,
        justify="start",
        data_testid="source",
        data_cited=source.cited.to_string(),
    )


def sources(msg: MsgView) -> rx.Component:
    """The numbered sources under an answer (none: nothing)."""
    return rx.cond(
        msg.sources.length() > 0,
        rx.box(
            rx.text(T["sources"], size="1", color=styles.muted, margin_bottom="0.25rem"),
            rx.flex(rx.foreach(msg.sources, _source), wrap="wrap", gap="0.4rem"),
            margin_top="0.5rem",
            data_testid="sources",
        ),
    )


def _memory(memory: MemoryView, message_id) -> rx.Component:  # type: ignore[no-untyped-def]
    return rx.hstack(
        rx.icon("brain", size=14, color=styles.muted),
        rx.text(T["memory_updated"], ": ", memory.text, size="1", color=styles.muted),
        rx.button(
            T["undo"],
            on_click=ChatState.undo_memory(message_id, memory.id),
            variant="ghost",
            size="1",
            data_testid="memory-undo",
        ),
        align="center",
        spacing="1",
        data_testid="memory-note",
    )


def memory_notes(msg: MsgView) -> rx.Component:
    """'Memory updated: …' under the answer that added it, with Undo."""
    return rx.cond(
        msg.memories.length() > 0, rx.box(rx.foreach(msg.memories, lambda m: _memory(m, msg.id)), margin_top="0.25rem")
    )


def passage_dialog() -> rx.Component:
    """The cited passage, highlighted between the text around it."""
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(ChatState.passage_title),
            rx.scroll_area(
                rx.text(
                    rx.text.span(ChatState.passage_before, color=styles.muted),
                    rx.el.mark(ChatState.passage_text, data_testid="passage-highlight"),
                    rx.text.span(ChatState.passage_after, color=styles.muted),
                    white_space="pre-wrap",
                    size="2",
                ),
                max_height="60dvh",
                type="auto",
            ),
            rx.dialog.close(rx.button(T["close"], variant="soft", margin_top="0.75rem")),
            data_testid="passage",
        ),
        open=ChatState.passage_open,
        on_open_change=ChatState.set_passage_open,
    )


def _check_item(label: rx.Component, checked, on_select, test_id: str) -> rx.Component:  # type: ignore[no-untyped-def]
    """A menu item that is ticked or not (Radix's checkbox item semantics: role and aria-checked)."""
    return rx.menu.item(
        rx.hstack(
            rx.box(rx.cond(checked, rx.icon("check", size=14)), width="14px", height="14px"),
            label,
            align="center",
            spacing="2",
        ),
        on_select=on_select,
        role="menuitemcheckbox",
        aria_checked=rx.cond(checked, "true", "false"),
        data_testid=test_id,
    )


def _base_item(base) -> rx.Component:  # type: ignore[no-untyped-def]
    name = rx.cond(base.shared, rx.text(base.name, " · ", T["shared"]), rx.text(base.name))
    return _check_item(name, base.chosen, ChatState.toggle_base(base.id), "kb-option")


def knowledge_picker() -> rx.Component:
    """The "#" button (typing # in the composer opens it too) and the chips of what is attached."""
    attached = ChatState.knowledge_all | (ChatState.knowledge_chosen.length() > 0)
    return rx.menu.root(
        rx.menu.trigger(
            rx.icon_button(
                rx.icon("hash", size=18),
                type="button",
                variant="ghost",
                color_scheme=rx.cond(attached, "accent", "gray"),
                size="3",
                aria_label=T["knowledge_pick"],
                min_width=styles.TOUCH,
                min_height=styles.TOUCH,
                id="knowledge-picker",
                data_testid="knowledge-picker",
                data_bases=ChatState.bases.length().to_string(),
            )
        ),
        rx.menu.content(
            _check_item(rx.text(T["knowledge_all"]), ChatState.knowledge_all, ChatState.toggle_all_knowledge, "kb-all"),
            rx.menu.separator(),
            rx.cond(
                ChatState.bases.length() > 0,
                rx.foreach(ChatState.bases, _base_item),
                rx.menu.item(T["knowledge_none"], disabled=True),
            ),
        ),
    )


def _chip(base) -> rx.Component:  # type: ignore[no-untyped-def]
    return rx.badge(
        "# ",
        base.name,
        rx.icon("x", size=12, on_click=ChatState.toggle_base(base.id), cursor="pointer", aria_label=T["remove"]),
        variant="soft",
        size="2",
        data_testid="kb-chip",
    )


def knowledge_chips() -> rx.Component:
    """What the next question is answered from, above the composer."""
    return rx.cond(
        ChatState.knowledge_all | (ChatState.knowledge_chosen.length() > 0),
        rx.flex(
            rx.cond(
                ChatState.knowledge_all,
                rx.badge(
                    "# ",
                    T["knowledge_all"],
                    rx.icon("x", size=12, on_click=ChatState.toggle_all_knowledge, cursor="pointer"),
                    variant="soft",
                    size="2",
                    data_testid="kb-chip",
                ),
                rx.foreach(ChatState.knowledge_chosen, _chip),
            ),
            wrap="wrap",
            gap="0.3rem",
            margin_bottom="0.4rem",
        ),
    )
