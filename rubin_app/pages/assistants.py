"""The assistants page (`/assistants`): the user's assistants and the shared ones, the editor, sharing (admins),
export and import. An assistant appears in the chat's model picker as "asst:<slug>"."""

from __future__ import annotations

import reflex as rx

from rubin_app.components import styles
from rubin_app.components.auth_forms import field, notice, page_card
from rubin_app.state.assistants import AssistantsState as S
from rubin_app.state.auth import AuthState

T = AuthState.tr


def _row(a: rx.Var) -> rx.Component:
    own = a["owned"] != ""
    return rx.vstack(
        rx.hstack(
            rx.text(a["emoji"], size="5"),
            rx.vstack(
                rx.text(a["name"], weight="medium", data_testid="assistant-name"),
                rx.text(
                    a["model"], " · ", a["base_model"], size="1", color=styles.muted, data_testid="assistant-model"
                ),
                spacing="0",
            ),
            rx.spacer(),
            rx.cond(a["shared"] != "", rx.badge(T["assistant_shared"], color_scheme="green")),
            width="100%",
            align="center",
        ),
        rx.cond(a["description"] != "", rx.text(a["description"], size="2", color=styles.muted)),
        rx.hstack(
            rx.cond(
                own,
                rx.button(
                    T["assistant_edit"],
                    size="1",
                    variant="soft",
                    on_click=S.open_editor(a["id"]),
                    data_testid="assistant-edit",
                ),
            ),
            rx.button(
                T["assistant_export"],
                size="1",
                variant="soft",
                on_click=S.export(a["id"]),
                data_testid="assistant-export",
            ),
            rx.cond(
                own & AuthState.is_admin,
                rx.button(
                    rx.cond(a["shared"] != "", T["assistant_unshare"], T["assistant_share"]),
                    size="1",
                    variant="soft",
                    on_click=S.set_shared(a["id"], a["shared"] == ""),
                    data_testid="assistant-share",
                ),
            ),
            rx.cond(
                own,
                rx.button(
                    T["delete"],
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    on_click=S.delete(a["id"]),
                    data_testid="assistant-delete",
                ),
            ),
            wrap="wrap",
            spacing="2",
        ),
        width="100%",
        padding="0.75rem",
        border=styles.border,
        border_radius="var(--radius-3)",
        data_testid="assistant-row",
    )


def _number(label: rx.Var, name: str, hint: rx.Var) -> rx.Component:
    return rx.box(field(label, name=name, default_value=S.form[name], placeholder=hint, input_mode="decimal"),
                  flex="1", min_width="8rem")  # fmt: skip


def _editor() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.heading(rx.cond(S.editing == "new", T["assistant_new"], T["assistant_edit"]), size="4"),
            rx.hstack(
                rx.box(
                    field(T["assistant_emoji"], name="emoji", default_value=S.form["emoji"], max_length=16),
                    width="6rem",
                ),
                rx.box(
                    field(
                        T["assistant_name"],
                        name="name",
                        default_value=S.form["name"],
                        max_length=80,
                        required=True,
                        data_testid="assistant-form-name",
                    ),
                    flex="1",
                ),
                width="100%",
            ),
            field(T["assistant_description"], name="description", default_value=S.form["description"], max_length=500),
            rx.text(T["assistant_base_model"], size="2", weight="medium"),
            rx.select(
                S.models,
                name="base_model",
                default_value=S.form["base_model"],
                width="100%",
                custom_attrs={"aria-label": T["assistant_base_model"], "data-testid": "assistant-form-model"},
            ),
            rx.text(T["assistant_system_prompt"], size="2", weight="medium"),
            rx.text_area(
                name="system_prompt",
                default_value=S.form["system_prompt"],
                rows="5",
                width="100%",
                aria_label=T["assistant_system_prompt"],
                data_testid="assistant-form-prompt",
            ),
            rx.hstack(
                _number(T["assistant_temperature"], "temperature", T["assistant_default"]),
                _number(T["assistant_max_tokens"], "max_tokens", T["assistant_default"]),
                _number(T["assistant_context_budget"], "context_budget", T["assistant_default"]),
                wrap="wrap",
                width="100%",
            ),
            rx.text(T["assistant_starters"], size="2", weight="medium"),
            rx.text_area(
                name="starters",
                default_value=S.form["starters"],
                rows="3",
                width="100%",
                aria_label=T["assistant_starters"],
            ),
            rx.hstack(
                rx.button(T["cancel"], type="button", variant="soft", color_scheme="gray", on_click=S.close_editor),
                rx.button(T["save"], type="submit", data_testid="assistant-save"),
                justify="end",
                width="100%",
            ),
            width="100%",
        ),
        on_submit=S.save,
        key=S.editing,
        width="100%",
        data_testid="assistant-editor",
    )


def _import() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.heading(T["assistant_import"], size="4"),
            rx.text(T["assistant_import_body"], size="2", color=styles.muted),
            rx.text_area(
                name="file",
                default_value=S.import_text,
                rows="4",
                width="100%",
                aria_label=T["assistant_import"],
                data_testid="assistant-import-text",
            ),
            rx.button(T["assistant_import"], type="submit", variant="soft", data_testid="assistant-import"),
            width="100%",
        ),
        on_submit=S.import_file,
        width="100%",
    )


def assistants_page() -> rx.Component:
    """The assistants page."""
    return page_card(
        rx.hstack(
            rx.heading(T["assistants"], size="6"),
            rx.spacer(),
            rx.link(T["back_to_chat"], href="/", size="2", data_testid="back-to-chat"),
            width="100%",
            align="center",
        ),
        rx.text(T["assistants_body"], size="2", color=styles.muted),
        rx.hstack(
            rx.button(T["assistant_new"], on_click=S.open_editor("new"), data_testid="assistant-new"),
            rx.button(T["assistant_export_all"], variant="soft", on_click=S.export("all"), data_testid="export-all"),
            spacing="2",
        ),
        notice(S.notice, "green", "assistants-notice"),
        notice(S.error, "red", "assistants-error"),
        rx.cond(S.editing != "", _editor()),
        rx.cond(
            S.items.length() > 0,
            rx.vstack(rx.foreach(S.items, _row), width="100%", spacing="2"),
            rx.text(T["assistants_none"], size="2", color=styles.muted, data_testid="assistants-none"),
        ),
        _import(),
        width="40rem",
        testid="assistants-page",
    )
