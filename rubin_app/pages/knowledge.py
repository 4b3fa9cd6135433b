"""The knowledge page (`/knowledge`): the user's bases and the shared ones; the open base's files with a progress
bar each, uploads by drag and drop (several files at once), cancel and delete; rename, share (admins), delete."""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars import ArrayVar, ObjectVar

from rubin_app.components import styles
from rubin_app.components.auth_forms import notice, page_card
from rubin_app.state.auth import AuthState
from rubin_app.state.knowledge import UPLOAD_ID, KnowledgeState

T = AuthState.tr
S = KnowledgeState


def _base_button(base: rx.Var) -> rx.Component:
    return rx.button(
        rx.text(base["name"], trim="both", overflow="hidden", text_overflow="ellipsis", white_space="nowrap"),
        rx.cond(base["shared"] != "", rx.badge(T["kb_shared"], color_scheme="green", size="1")),
        on_click=S.open_base(base["id"]),
        variant=rx.cond(S.current == base["id"], "solid", "soft"),
        color_scheme=rx.cond(S.current == base["id"], "ruby", "gray"),
        min_height=styles.TOUCH,
        max_width="100%",
        data_testid="kb-base",
    )


def _create_form() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.input(
                name="name",
                placeholder=T["kb_new"],
                aria_label=T["kb_new"],
                max_length=200,
                required=True,
                size="3",
                flex="1",
                min_width="0",
                data_testid="kb-new-name",
            ),
            rx.button(T["kb_create"], type="submit", size="3", min_height=styles.TOUCH, data_testid="kb-create"),
            width="100%",
        ),
        on_submit=S.create,
        reset_on_submit=True,
        width="100%",
    )


def _owner_tools() -> rx.Component:
    return rx.hstack(
        rx.form(
            rx.hstack(
                rx.input(
                    name="name",
                    default_value=S.current_name,
                    key=S.current,
                    aria_label=T["kb_name"],
                    max_length=200,
                    size="2",
                    flex="1",
                    min_width="0",
                    data_testid="kb-rename-input",
                ),
                rx.button(T["rename"], type="submit", size="2", variant="soft", data_testid="kb-rename"),
                width="100%",
            ),
            on_submit=S.rename,
            flex="1",
            min_width="12rem",
        ),
        rx.button(
            T["delete"],
            size="2",
            variant="soft",
            color_scheme="red",
            on_click=S.ask_delete(True),
            data_testid="kb-delete",
        ),
        width="100%",
        wrap="wrap",
        align="center",
    )


def _delete_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(T["kb_delete_title"]),
            rx.alert_dialog.description(T["kb_delete_body"].replace("{name}", S.current_name)),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button(T["cancel"], variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button(T["delete"], color_scheme="red", on_click=S.delete_base, data_testid="kb-delete-confirm")
                ),
                justify="end",
                margin_top="1rem",
            ),
        ),
        open=S.delete_open,
        on_open_change=S.ask_delete,
    )


def _rejected(rejections: rx.Var) -> Any:
    """The names of the files the drop zone refused (react-dropzone gives {file, errors} records)."""
    records = rejections.to(ArrayVar, list[dict[str, Any]])
    return S.rejected(records.map(lambda r: r.to(ObjectVar, dict[str, dict[str, Any]])["file"].to(ObjectVar)["path"]))


def _label_file_input(component: rx.Component, label: rx.Var) -> rx.Component:
    """rx.upload draws its file input without props: give that input an accessible name (axe: label)."""
    stack = [component]
    while stack:
        node = stack.pop()
        if getattr(node, "tag", "") == "input":
            node.custom_attrs["aria-label"] = label
        stack.extend(node.children)
    return component


def _drop_zone() -> rx.Component:
    return rx.vstack(
        _label_file_input(
            rx.upload(
                rx.vstack(
                    rx.icon("upload", size=24, color=styles.muted),
                    rx.text(T["kb_drop"], size="2", weight="medium", align="center"),
                    rx.text(
                        T["kb_formats"].replace("{mb}", S.max_mb.to_string()),
                        size="1",
                        color=styles.muted,
                        align="center",
                    ),
                    align="center",
                    spacing="1",
                ),
                id=UPLOAD_ID,
                multiple=True,
                max_size=S.max_bytes,
                on_drop=S.upload(rx.upload_files(upload_id=UPLOAD_ID, on_upload_progress=S.upload_progress)),
                on_drop_rejected=_rejected,
                border=f"2px dashed {rx.color('gray', 7)}",
                border_radius=styles.RADIUS,
                padding="1.25rem 1rem",
                width="100%",
                cursor="pointer",
                data_testid="kb-upload",
            ),
            T["kb_drop"],
        ),
        rx.cond(
            S.uploading,
            rx.vstack(
                rx.text(T["kb_uploading"], " ", S.upload_percent.to_string(), "%", size="1", color=styles.muted),
                rx.progress(
                    value=S.upload_percent, width="100%", aria_label=T["kb_uploading"], data_testid="kb-upload-progress"
                ),
                width="100%",
                spacing="1",
            ),
        ),
        rx.foreach(
            S.upload_errors,
            lambda e: rx.callout(e, color_scheme="red", size="1", width="100%", role="alert", data_testid="kb-refused"),
        ),
        width="100%",
        spacing="2",
    )


def _file_row(f: rx.Var) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.vstack(
                rx.text(
                    f["filename"],
                    weight="medium",
                    size="2",
                    style={"word_break": "break-word"},
                    data_testid="kb-file-name",
                ),
                rx.text(f["size"], " ", f["chunks"], size="1", color=styles.muted),
                spacing="0",
                flex="1",
                min_width="0",
            ),
            rx.badge(
                f["status_text"],
                color_scheme=rx.match(
                    f["status"], ("ready", "green"), ("failed", "red"), ("cancelled", "gray"), "blue"
                ),
                data_testid="kb-file-status",
                data_status=f["status"],
            ),
            rx.cond(
                (f["active"] != "") & S.current_mine,
                rx.button(
                    T["kb_cancel_file"],
                    size="1",
                    variant="soft",
                    color_scheme="gray",
                    on_click=S.cancel_file(f["id"]),
                    data_testid="kb-file-cancel",
                ),
            ),
            rx.cond(
                (f["active"] == "") & S.current_mine,
                rx.icon_button(
                    rx.icon("trash_2", size=16),
                    size="2",
                    variant="ghost",
                    color_scheme="red",
                    aria_label=T["kb_delete_file"],
                    title=T["kb_delete_file"],
                    on_click=S.delete_file(f["id"]),
                    min_width=styles.TOUCH,
                    min_height=styles.TOUCH,
                    data_testid="kb-file-delete",
                ),
            ),
            width="100%",
            align="center",
            spacing="2",
        ),
        rx.cond(
            f["active"] != "",
            rx.progress(
                value=f["progress"].to(int), width="100%", aria_label=f["filename"], data_testid="kb-file-progress"
            ),
        ),
        rx.cond(
            f["error"] != "", rx.text(f["error"], size="1", color=rx.color("red", 11), data_testid="kb-file-error")
        ),
        width="100%",
        spacing="1",
        padding="0.5rem 0",
        border_bottom=styles.border,
        data_testid="kb-file",
    )


def _open_base() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.heading(S.current_name, size="4", flex="1", min_width="0", data_testid="kb-title"),
            rx.cond(
                AuthState.is_admin,
                rx.button(
                    rx.cond(S.current_shared, T["kb_unshare"], T["kb_share"]),
                    size="2",
                    variant="outline",
                    on_click=S.toggle_share,
                    data_testid="kb-share",
                ),
            ),
            width="100%",
            align="center",
            wrap="wrap",
        ),
        rx.cond(S.current_mine, _owner_tools(), rx.text(T["kb_shared_by_other"], size="2", color=styles.muted)),
        rx.cond(S.current_mine, _drop_zone()),
        rx.heading(T["kb_files"], size="3", padding_top="0.5rem"),
        rx.cond(
            S.files.length() > 0,
            rx.vstack(rx.foreach(S.files, _file_row), width="100%", spacing="0", data_testid="kb-files"),
            rx.text(T["kb_no_files"], size="2", color=styles.muted),
        ),
        width="100%",
        spacing="3",
    )


def knowledge_page() -> rx.Component:
    """The knowledge page."""
    return page_card(
        rx.hstack(
            rx.heading(T["knowledge_title"], size="6"),
            rx.spacer(),
            rx.link(T["back_to_chat"], href="/", size="2", data_testid="back-to-chat"),
            width="100%",
            align="center",
        ),
        rx.text(T["knowledge_intro"], size="2", color=styles.muted),
        _create_form(),
        notice(S.kb_error, "red", "kb-error"),
        rx.cond(
            S.bases.length() > 0,
            rx.flex(rx.foreach(S.bases, _base_button), wrap="wrap", gap="0.5rem", width="100%", data_testid="kb-bases"),
            rx.text(T["kb_none"], size="2", color=styles.muted, data_testid="kb-none"),
        ),
        rx.cond(S.current != "", _open_base()),
        _delete_dialog(),
        width="48rem",
        testid="knowledge-page",
    )
