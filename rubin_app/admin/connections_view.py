"""Admin: the model connections section (each connection's form and state, a new one, model capabilities)."""

from __future__ import annotations

import reflex as rx

from rubin_app.admin.connections import CapabilityRow, ConnectionRow, ConnectionsState
from rubin_app.components import styles
from rubin_app.components.auth_forms import notice
from rubin_app.connections.capabilities import CAPABILITIES, LABELS
from rubin_app.state.auth import AuthState

T = AuthState.tr


def _field(name: str, label: str, value: rx.Var | str = "", **props) -> rx.Component:
    return rx.vstack(
        rx.text(T[label], size="1", color=styles.muted),
        rx.input(name=name, default_value=value, aria_label=T[label], data_testid=f"connection-{name}", **props),
        spacing="1",
        flex="1 1 14rem",
    )


def _key_field(placeholder: rx.Var) -> rx.Component:
    """Write-only: the field starts empty whatever is stored, and the browser is told not to remember it."""
    return _field(
        "api_key",
        "connection_key",
        "",
        type="password",
        auto_complete="new-password",
        placeholder=placeholder,
        max_length=1000,
    )


def _status(row: ConnectionRow) -> rx.Component:
    return rx.badge(
        row.status,
        color_scheme=rx.cond(row.ok, "green", rx.cond(row.enabled, "amber", "gray")),
        variant="surface",
        high_contrast=True,
        data_testid="connection-status",
    )


def _builtin_card(row: ConnectionRow) -> rx.Component:
    """The connection from the settings: shown, tested, not edited here."""
    return rx.hstack(
        rx.text(row.name, weight="medium"),
        rx.text(row.base_url, size="2", color=styles.muted),
        rx.badge(T["connection_builtin"], variant="soft", color_scheme="gray"),
        _status(row),
        rx.spacer(),
        rx.button(
            T["connection_test"],
            size="2",
            variant="soft",
            on_click=ConnectionsState.test_connection(row.id),
            data_testid="connection-test",
        ),
        align="center",
        wrap="wrap",
        width="100%",
    )


def _edit_form(row: ConnectionRow) -> rx.Component:
    return rx.form(
        rx.el.input(type="hidden", name="id", value=row.id.to_string()),
        rx.hstack(
            _field("name", "connection_name", row.name, max_length=60, required=True),
            _field("base_url", "connection_url", row.base_url, max_length=2048, required=True),
            _key_field(rx.cond(row.has_key, T["connection_key_set"], T["connection_key_none"])),
            _field("prefix", "connection_prefix", row.prefix, max_length=40),
            _field("models", "connection_models", row.models, max_length=4000),
            wrap="wrap",
            width="100%",
        ),
        rx.hstack(
            rx.cond(
                row.has_key,
                rx.el.label(
                    rx.hstack(
                        rx.checkbox(name="clear_key", data_testid="connection-clear-key"),
                        rx.text(T["connection_clear_key"], size="2"),
                        align="center",
                    )
                ),
            ),
            rx.el.label(
                rx.hstack(
                    rx.switch(
                        checked=row.enabled,
                        on_change=lambda v: ConnectionsState.set_enabled(row.id, v),
                        data_testid="connection-enabled",
                    ),
                    rx.text(T["connection_enabled"], size="2"),
                    align="center",
                    min_height=styles.TOUCH,
                )
            ),
            _status(row),
            rx.spacer(),
            rx.button(T["connection_save"], type="submit", size="2", data_testid="connection-save"),
            rx.button(
                T["connection_test"],
                type="button",
                size="2",
                variant="soft",
                on_click=ConnectionsState.test_connection(row.id),
                data_testid="connection-test",
            ),
            rx.button(
                T["connection_delete"],
                type="button",
                size="2",
                variant="soft",
                color_scheme="red",
                on_click=ConnectionsState.delete_connection(row.id),
                data_testid="connection-delete",
            ),
            align="center",
            wrap="wrap",
            width="100%",
            padding_top="0.5rem",
        ),
        on_submit=ConnectionsState.save_connection,
        reset_on_submit=True,
        key=row.id.to_string() + row.name + row.base_url + row.has_key.to_string(),
    )


def _connection_card(row: ConnectionRow) -> rx.Component:
    return rx.card(
        rx.cond(row.builtin, _builtin_card(row), _edit_form(row)), width="100%", data_testid="connection-card"
    )


def _new_connection() -> rx.Component:
    return rx.card(
        rx.form(
            rx.hstack(
                _field("name", "connection_name", max_length=60, required=True),
                _field("base_url", "connection_url", max_length=2048, required=True, placeholder="https://…/v1"),
                _key_field(T["connection_key_none"]),
                _field("prefix", "connection_prefix", max_length=40),
                _field("models", "connection_models", max_length=4000),
                wrap="wrap",
                width="100%",
            ),
            rx.button(T["connection_add"], type="submit", margin_top="0.5rem", data_testid="connection-add"),
            on_submit=ConnectionsState.add_connection,
            reset_on_submit=True,
        ),
        width="100%",
        data_testid="connection-new",
    )


def _capability_row(row: CapabilityRow, index: rx.Var[int]) -> rx.Component:
    ticks = [
        rx.el.label(
            rx.hstack(
                rx.checkbox(
                    checked=row.capabilities.contains(c),
                    aria_label=T[LABELS[c]],
                    on_change=lambda v, c=c: ConnectionsState.set_capability(index, c, v),
                ),
                rx.text(T[LABELS[c]], size="2"),
                align="center",
                spacing="1",
                min_height=styles.TOUCH,
            )
        )
        for c in CAPABILITIES
    ]
    return rx.hstack(
        rx.text(row.name, size="2", weight="medium", min_width="12rem"),
        rx.text(row.connection, size="1", color=styles.muted, min_width="6rem"),
        *ticks,
        rx.cond(
            row.overridden,
            rx.button(
                T["connection_reset_capabilities"],
                size="1",
                variant="ghost",
                on_click=ConnectionsState.reset_capabilities(index),
            ),
        ),
        align="center",
        wrap="wrap",
        spacing="3",
        data_testid="capability-row",
    )


def connections_section() -> rx.Component:
    """Model connections, for the admin page."""
    return rx.vstack(
        rx.heading(T["connections"], size="4"),
        rx.text(T["connections_intro"], size="2", color=styles.muted),
        notice(ConnectionsState.connections_error, "red", "connections-error"),
        rx.foreach(ConnectionsState.connection_rows, _connection_card),
        _new_connection(),
        rx.text(T["connection_capabilities"], size="2", weight="medium"),
        rx.foreach(ConnectionsState.capability_rows, _capability_row),
        width="100%",
        on_mount=ConnectionsState.load_connections,
        data_testid="admin-connections",
    )
