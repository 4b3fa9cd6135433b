"""Admin: the groups section (groups, their members and permissions, the defaults for users in no group)."""

from __future__ import annotations

import reflex as rx

from rubin_app.accounts.permissions import FEATURES
from rubin_app.admin.groups import GroupRow, GroupsState
from rubin_app.components import styles
from rubin_app.components.auth_forms import notice
from rubin_app.state.auth import AuthState

T = AuthState.tr
LABELS = {"api_keys": "perm_api_keys", "webhooks": "perm_webhooks", "knowledge_sharing": "perm_knowledge_sharing"}


def _permissions(row: GroupRow) -> rx.Component:
    """The feature switches and the model allow-list of a group (or of the defaults)."""
    switches = [
        rx.el.label(
            rx.hstack(
                rx.switch(
                    checked=getattr(row, flag),
                    on_change=lambda v, f=flag: GroupsState.set_flag(row.id, f, v),
                    data_testid=f"perm-{flag}",
                ),
                rx.text(T[LABELS[flag]], size="2"),
                align="center",
                spacing="3",
                min_height=styles.TOUCH,
            )
        )
        for flag in FEATURES
    ]
    models = rx.foreach(
        GroupsState.model_choices,
        lambda m: rx.el.label(
            rx.hstack(
                rx.checkbox(
                    checked=row.models.contains(m),
                    on_change=lambda v: GroupsState.set_model(row.id, m, v),
                    aria_label=m,
                    data_testid="perm-model",
                ),
                rx.text(m, size="2"),
                align="center",
                spacing="2",
                min_height=styles.TOUCH,
            )
        ),
    )
    return rx.vstack(
        *switches,
        rx.text(T["group_models"], size="2", weight="medium"),
        rx.hstack(models, wrap="wrap", spacing="4"),
        spacing="1",
        width="100%",
    )


def _members(row: GroupRow) -> rx.Component:
    return rx.vstack(
        rx.text(T["group_members"], size="2", weight="medium"),
        rx.hstack(
            rx.foreach(
                row.members,
                lambda u: rx.badge(
                    u.email,
                    rx.icon_button(
                        rx.icon("x", size=12),
                        size="1",
                        variant="ghost",
                        aria_label=T["group_remove_member"],
                        on_click=GroupsState.remove_member(row.id, u.id),
                        data_testid="remove-member",
                    ),
                    variant="surface",
                    data_testid="group-member",
                ),
            ),
            wrap="wrap",
        ),
        rx.select.root(
            rx.select.trigger(placeholder=T["group_add_member"], aria_label=T["group_add_member"]),
            rx.select.content(
                rx.foreach(GroupsState.user_choices, lambda u: rx.select.item(u.email, value=u.id.to_string()))
            ),
            value="",
            on_change=lambda v: GroupsState.add_member(row.id, v),
            size="2",
        ),
        spacing="2",
        width="100%",
        data_testid="add-member",
    )


def _group_card(row: GroupRow) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.form(
                rx.hstack(
                    rx.el.input(type="hidden", name="group_id", value=row.id.to_string()),
                    rx.input(
                        name="name",
                        default_value=row.name,
                        aria_label=T["group_name"],
                        max_length=80,
                        data_testid="group-name",
                    ),
                    rx.button(T["group_rename"], type="submit", variant="soft", size="2"),
                    rx.spacer(),
                    rx.button(
                        T["group_delete"],
                        type="button",
                        color_scheme="red",
                        variant="soft",
                        size="2",
                        on_click=GroupsState.delete_group(row.id),
                        data_testid="delete-group",
                    ),
                    align="center",
                    width="100%",
                    wrap="wrap",
                ),
                on_submit=GroupsState.rename_group,
                key=row.name,
            ),
            _permissions(row),
            _members(row),
            spacing="3",
            width="100%",
        ),
        width="100%",
        data_testid="group-card",
    )


def groups_section() -> rx.Component:
    """Groups and permissions, for the admin page."""
    return rx.vstack(
        rx.heading(T["groups"], size="4"),
        rx.text(T["groups_help"], size="2", color=styles.muted),
        notice(GroupsState.groups_error, "red", "groups-error"),
        rx.card(
            rx.vstack(
                rx.text(T["permission_defaults"], weight="medium"), _permissions(GroupsState.defaults), width="100%"
            ),
            width="100%",
            data_testid="permission-defaults",
        ),
        rx.foreach(GroupsState.group_rows, _group_card),
        rx.form(
            rx.hstack(
                rx.input(
                    name="name",
                    placeholder=T["group_new_name"],
                    aria_label=T["group_new_name"],
                    max_length=80,
                    required=True,
                    data_testid="new-group-name",
                ),
                rx.button(T["group_create"], type="submit", data_testid="create-group"),
                align="center",
            ),
            on_submit=GroupsState.create_group,
            reset_on_submit=True,
        ),
        width="100%",
        on_mount=GroupsState.load_groups,
        data_testid="admin-groups",
    )
