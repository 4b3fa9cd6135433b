"""The account page's "Personalisation" (custom instructions) and "Memory" (the list, add, edit, delete, Undo,
the off switch) sections."""

from __future__ import annotations

import reflex as rx

from rubin_app.components import styles
from rubin_app.components.auth_forms import notice
from rubin_app.state.auth import AuthState
from rubin_app.state.personal import PersonalState

T = AuthState.tr


def _area(label: rx.Var, name: str, value: rx.Var, testid: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2", weight="medium"),
        rx.text_area(
            name=name,
            default_value=value,
            max_length=1500,
            rows="3",
            width="100%",
            aria_label=label,
            data_testid=testid,
        ),
        spacing="1",
        width="100%",
    )


def personalisation_section() -> rx.Component:
    """Custom instructions, sent with every chat."""
    return rx.vstack(
        rx.heading(T["personalisation"], size="4"),
        rx.text(T["personalisation_body"], size="2", color=styles.muted),
        rx.form(
            rx.vstack(
                _area(T["instructions_about"], "about", PersonalState.about, "instructions-about"),
                _area(T["instructions_style"], "style", PersonalState.style, "instructions-style"),
                rx.button(T["save"], type="submit", size="3", min_height=styles.TOUCH, data_testid="save-instructions"),
                width="100%",
            ),
            on_submit=PersonalState.save_instructions,
            width="100%",
            key=PersonalState.about + PersonalState.style,  # re-drawn with the saved values once they load
        ),
        notice(PersonalState.instructions_notice, "green", "instructions-notice"),
        notice(PersonalState.instructions_error, "red", "instructions-error"),
        spacing="3",
        width="100%",
        padding_top="0.5rem",
        data_testid="personalisation",
    )


def _memory_row(memory: rx.Var) -> rx.Component:
    return rx.cond(
        PersonalState.editing_id == memory["id"],
        rx.form(
            rx.hstack(
                rx.input(
                    name="text",
                    default_value=memory["text"],
                    max_length=500,
                    flex="1",
                    aria_label=T["memory_edit"],
                    data_testid="memory-edit-text",
                ),
                rx.button(T["save"], type="submit", size="2", data_testid="memory-save"),
                rx.button(
                    T["cancel"],
                    type="button",
                    size="2",
                    variant="soft",
                    color_scheme="gray",
                    on_click=PersonalState.edit(""),
                ),
                width="100%",
                align="center",
            ),
            on_submit=PersonalState.save_edit,
            width="100%",
        ),
        rx.hstack(
            rx.text(memory["text"], size="2", flex="1", data_testid="memory-text"),
            rx.button(
                T["memory_edit"],
                size="1",
                variant="soft",
                on_click=PersonalState.edit(memory["id"]),
                data_testid="memory-edit",
            ),
            rx.button(
                T["delete"],
                size="1",
                variant="soft",
                color_scheme="red",
                on_click=PersonalState.delete(memory["id"]),
                data_testid="memory-delete",
            ),
            width="100%",
            align="center",
            data_testid="memory-row",
        ),
    )


def memory_section() -> rx.Component:
    """What Rubin remembers about the user, and the switch."""
    return rx.vstack(
        rx.heading(T["memory"], size="4"),
        rx.text(T["memory_body"], size="2", color=styles.muted),
        rx.hstack(
            rx.switch(
                checked=PersonalState.memory_on,
                on_change=PersonalState.set_memory_on,
                aria_label=T["memory_switch"],
                data_testid="memory-switch",
            ),
            rx.text(T["memory_switch"], size="2"),
            align="center",
        ),
        rx.form(
            rx.hstack(
                rx.input(
                    name="text",
                    id="memory-new",
                    max_length=500,
                    placeholder=T["memory_add_placeholder"],
                    flex="1",
                    aria_label=T["memory_add_placeholder"],
                    data_testid="memory-new",
                ),
                rx.button(T["memory_add"], type="submit", size="2", data_testid="memory-add"),
                width="100%",
                align="center",
            ),
            on_submit=PersonalState.add,
            width="100%",
        ),
        notice(PersonalState.memory_error, "red", "memory-error"),
        rx.cond(
            PersonalState.undo_text != "",
            rx.callout(
                rx.hstack(
                    rx.text(T["memory_deleted"], size="2"),
                    rx.button(
                        T["undo"],
                        size="1",
                        variant="soft",
                        on_click=PersonalState.undo_delete,
                        data_testid="memory-undo",
                    ),
                    align="center",
                ),
                color_scheme="gray",
                width="100%",
            ),
        ),
        rx.cond(
            PersonalState.memories.length() > 0,
            rx.vstack(rx.foreach(PersonalState.memories, _memory_row), width="100%", spacing="2"),
            rx.cond(
                PersonalState.loaded,
                rx.text(T["memory_none"], size="2", color=styles.muted, data_testid="memory-none"),
                rx.spinner(size="2"),
            ),
        ),
        spacing="3",
        width="100%",
        padding_top="0.5rem",
        data_testid="memory",
    )
