"""The admin page (`/admin`): users and roles, sign-in policy, the audit log."""

from __future__ import annotations

import reflex as rx

from rubin_app.admin.connections_view import connections_section
from rubin_app.admin.groups_view import groups_section
from rubin_app.admin.platform import platform_section
from rubin_app.admin.reauth import reauth_dialog
from rubin_app.admin.resources import limits_button, limits_dialog, models_section
from rubin_app.admin.retention import retention_section
from rubin_app.admin.state import ALL_ACTIONS, AdminState, AuditRow, UserRow
from rubin_app.admin.two_factor import two_factor_policy
from rubin_app.components import styles
from rubin_app.components.auth_forms import notice
from rubin_app.components.prefs import theme_appliers
from rubin_app.components.webhooks import webhooks_section
from rubin_app.state.auth import AuthState
from rubin_app.state.webhooks import InstanceWebhooksState

T = AuthState.tr


def _role_select(user: UserRow) -> rx.Component:
    return rx.select.root(
        rx.select.trigger(aria_label=T["role"], data_testid="role-select"),
        rx.select.content(
            rx.select.item(T["role_admin"], value="admin"),
            rx.select.item(T["role_user"], value="user"),
            rx.select.item(T["role_pending"], value="pending"),
        ),
        value=user.role,
        on_change=lambda role: AdminState.set_role(user.id, role),
        size="1",
    )


def _user_row(user: UserRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text(user.name, weight="medium"),
                rx.text(user.email, size="1", color=styles.muted),
                rx.cond(
                    user.lookalike != "",
                    rx.badge(
                        rx.icon("triangle_alert", size=12, aria_hidden="true"),
                        T["lookalike_of"].replace("{email}", user.lookalike),
                        color_scheme="amber",
                        variant="surface",
                        high_contrast=True,  # amber text on its light surface is under WCAG AA otherwise (axe)
                        data_testid="lookalike",
                    ),
                ),
                spacing="1",
            )
        ),
        rx.table.cell(user.provider),
        rx.table.cell(
            rx.hstack(
                _role_select(user),
                rx.cond(
                    user.role == "pending",
                    rx.button(
                        T["approve"], size="1", on_click=AdminState.set_role(user.id, "user"), data_testid="approve"
                    ),
                ),
                spacing="2",
            )
        ),
        rx.table.cell(user.created),
        rx.table.cell(rx.cond(user.last_login != "", user.last_login, T["never"])),
        rx.table.cell(
            rx.hstack(
                limits_button(user.id, user.email),
                rx.icon_button(
                    rx.icon("trash_2", size=14),
                    variant="ghost",
                    color_scheme="red",
                    aria_label=T["delete_user"],
                    on_click=AdminState.ask_delete(user.id, user.email),
                    data_testid="delete-user",
                ),
                spacing="2",
            )
        ),
        data_testid="user-row",
    )


def _scrolling(table: rx.Component, label: rx.Var, **props) -> rx.Component:
    """A table that scrolls when it does not fit: a labelled region keyboard users can focus and scroll."""
    return rx.box(table, overflow="auto", width="100%", tab_index=0, role="region", aria_label=label, **props)


def _users() -> rx.Component:
    return rx.vstack(
        rx.heading(T["users"], size="4"),
        _scrolling(
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell(T["user"]),
                        rx.table.column_header_cell(T["provider"]),
                        rx.table.column_header_cell(T["role"]),
                        rx.table.column_header_cell(T["created"]),
                        rx.table.column_header_cell(T["last_login"]),
                        rx.table.column_header_cell(""),
                    )
                ),
                rx.table.body(rx.foreach(AdminState.users, _user_row)),
                size="1",
                width="100%",
            ),
            label=T["users"],
        ),
        width="100%",
    )


def _switch(label: rx.Var, key: str, value: rx.Var) -> rx.Component:
    return rx.el.label(
        rx.hstack(
            rx.switch(checked=value, on_change=lambda v: AdminState.set_policy(key, v), data_testid=f"policy-{key}"),
            rx.text(label, size="2"),
            align="center",
            spacing="3",
            min_height=styles.TOUCH,
        )
    )


def _policy() -> rx.Component:
    return rx.vstack(
        rx.heading(T["sign_in_policy"], size="4"),
        _switch(T["policy_local_login"], "local_login", AdminState.local_login),
        _switch(T["policy_local_signup"], "local_signup", AdminState.local_signup),
        _switch(T["policy_require_approval"], "require_approval", AdminState.require_approval),
        two_factor_policy(),
        width="100%",
    )


def _event_row(event: AuditRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(event.when, white_space="nowrap"),
        rx.table.cell(rx.badge(event.action, color_scheme=rx.cond(event.ok, "gray", "red"))),
        rx.table.cell(event.user),
        rx.table.cell(event.ip),
        rx.table.cell(event.detail),
        data_testid="audit-row",
    )


def _audit_filters() -> rx.Component:
    """Action, email/IP text and "only failures": a form, so Enter in the text field applies it."""
    return rx.form(
        rx.hstack(
            rx.select.root(
                rx.select.trigger(aria_label=T["audit_action_filter"], data_testid="audit-action"),
                rx.select.content(
                    rx.select.item(T["audit_all_actions"], value=ALL_ACTIONS),
                    rx.foreach(AdminState.audit_actions, lambda a: rx.select.item(a, value=a)),
                ),
                value=AdminState.audit_action,
                on_change=AdminState.set_audit_action,
                size="2",
            ),
            rx.input(
                name="text",
                default_value=AdminState.audit_text,
                placeholder=T["audit_text_filter"],
                aria_label=T["audit_text_filter"],
                max_length=254,
                data_testid="audit-text",
            ),
            rx.el.label(
                rx.hstack(
                    rx.checkbox(
                        name="failures",
                        default_checked=AdminState.audit_failures,
                        aria_label=T["audit_failures_only"],  # Radix's checkbox is a button: the label is not its name
                        data_testid="audit-failures",
                    ),
                    rx.text(T["audit_failures_only"], size="2"),
                    align="center",
                    spacing="2",
                )
            ),
            rx.button(T["audit_filter"], type="submit", data_testid="audit-filter"),
            rx.button(
                T["audit_clear"],
                type="button",
                variant="soft",
                color_scheme="gray",
                on_click=AdminState.clear_audit_filters,
            ),
            wrap="wrap",
            align="center",
            spacing="3",
        ),
        on_submit=AdminState.filter_audit,
        key=AdminState.audit_text + AdminState.audit_failures.to_string(),
        width="100%",
    )


def _audit_pager() -> rx.Component:
    return rx.hstack(
        rx.button(
            T["audit_newer"],
            variant="soft",
            disabled=AdminState.audit_page == 0,
            on_click=AdminState.audit_newer,
            data_testid="audit-newer",
        ),
        rx.text(
            T["audit_page"].replace("{page}", (AdminState.audit_page + 1).to_string()), size="2", aria_live="polite"
        ),
        rx.button(
            T["audit_older"],
            variant="soft",
            disabled=~AdminState.audit_has_more,
            on_click=AdminState.audit_older,
            data_testid="audit-older",
        ),
        align="center",
        spacing="3",
    )


def _audit() -> rx.Component:
    return rx.vstack(
        rx.heading(T["audit_log"], size="4"),
        _audit_filters(),
        _scrolling(
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[rx.table.column_header_cell(T[k]) for k in ("when", "action", "user", "ip", "detail")]
                    )
                ),
                rx.table.body(rx.foreach(AdminState.events, _event_row)),
                size="1",
                width="100%",
            ),
            label=T["audit_log"],
            max_height="24rem",
        ),
        rx.cond(AdminState.events.length() == 0, rx.text(T["audit_empty"], size="2", color=styles.muted)),
        _audit_pager(),
        width="100%",
    )


def _delete_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(T["delete_user"]),
            rx.alert_dialog.description(T["delete_user_body"].replace("{email}", AdminState.delete_email)),
            rx.hstack(
                rx.alert_dialog.cancel(
                    rx.button(T["cancel"], variant="soft", color_scheme="gray", on_click=AdminState.cancel_delete)
                ),
                rx.alert_dialog.action(
                    rx.button(
                        T["delete"],
                        color_scheme="red",
                        on_click=AdminState.confirm_delete,
                        data_testid="confirm-delete-user",
                    )
                ),
                justify="end",
                padding_top="1rem",
            ),
        ),
        open=AdminState.delete_id != 0,
        on_open_change=AdminState.delete_open_changed,
    )


def admin_page() -> rx.Component:
    """The admin page."""
    return rx.box(
        theme_appliers(),
        rx.vstack(
            rx.hstack(
                rx.heading(T["admin"], size="6"),
                rx.spacer(),
                rx.link(T["account"], href="/account", size="2"),
                rx.link(T["back_to_chat"], href="/", size="2"),
                width="100%",
                align="center",
                spacing="4",
            ),
            notice(AdminState.error, "red", "admin-error"),
            _policy(),
            retention_section(),  # how long chats are kept (admin/retention.py)
            _users(),
            groups_section(),
            connections_section(),  # model connections (admin/connections.py)
            models_section(),
            platform_section(),
            webhooks_section(InstanceWebhooksState),
            _audit(),
            _delete_dialog(),
            reauth_dialog(),
            limits_dialog(),
            spacing="5",
            width="100%",
            max_width="64rem",
            margin_x="auto",
            padding="1rem",
        ),
        min_height="100dvh",
        data_testid="admin-page",
    )
