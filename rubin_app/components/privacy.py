"""The account page's privacy sections (state/privacy.py): active sessions with "end" buttons, a link to the
API keys' last use, and how long chats are kept (with the user's shorter choice)."""

from __future__ import annotations

import reflex as rx

from rubin_app.components import styles
from rubin_app.components.auth_forms import notice
from rubin_app.state.auth import AuthState
from rubin_app.state.privacy import INSTANCE, PrivacyState

T = AuthState.tr


def _device_row(device: rx.Var) -> rx.Component:
    return rx.hstack(
        rx.vstack(
            rx.text(device["device"], weight="medium", size="2", data_testid="session-device"),
            rx.text(
                device["ip"]
                + " · "
                + T["session_signed_in"].replace("{when}", device["created"].to(str))
                + " · "
                + T["session_seen"].replace("{when}", device["seen"].to(str)),
                size="1",
                color=styles.muted,
            ),
            spacing="1",
            flex="1",
            min_width="0",
        ),
        rx.cond(
            device["current"] != "",
            rx.badge(T["session_this_device"], color_scheme="green", data_testid="session-current"),
            rx.button(
                T["session_end"],
                size="2",
                variant="soft",
                color_scheme="red",
                min_height=styles.TOUCH,
                on_click=PrivacyState.end_session(device["id"]),
                data_testid="end-session",
            ),
        ),
        width="100%",
        align="center",
        padding_y="0.4rem",
        border_bottom=styles.border,
        data_testid="session-row",
    )


def _sessions() -> rx.Component:
    return rx.vstack(
        rx.heading(T["sessions_title"], size="4"),
        rx.foreach(PrivacyState.devices, _device_row),
        rx.button(
            T["sessions_end_others"],
            variant="outline",
            size="3",
            width="100%",
            min_height=styles.TOUCH,
            on_click=PrivacyState.end_other_sessions,
            data_testid="end-other-sessions",
        ),
        notice(PrivacyState.sessions_notice, "green", "sessions-notice"),
        notice(PrivacyState.sessions_error, "red", "sessions-error"),
        rx.text(
            T["sessions_keys_hint"],
            " ",
            rx.link(T["sessions_keys_link"], href="#api-keys", underline="always", data_testid="sessions-keys-link"),
            size="2",
            color=styles.muted,
        ),
        spacing="3",
        width="100%",
        padding_top="0.5rem",
        data_testid="sessions",
    )


def _retention() -> rx.Component:
    return rx.vstack(
        rx.heading(T["retention_title"], size="4"),
        rx.text(PrivacyState.retention_text, size="2", color=styles.muted, data_testid="retention-text"),
        rx.hstack(
            rx.text(T["retention_mine"], size="2", weight="medium", flex="1"),
            rx.select.root(
                rx.select.trigger(aria_label=T["retention_mine"], data_testid="retention-select"),
                rx.select.content(
                    rx.select.item(T["retention_instance_default"], value=INSTANCE),
                    rx.foreach(
                        PrivacyState.retention_choices,
                        lambda d: rx.select.item(d["label"], value=d["value"]),
                    ),
                ),
                value=PrivacyState.retention_choice,
                on_change=PrivacyState.set_retention,
            ),
            width="100%",
            align="center",
        ),
        notice(PrivacyState.retention_error, "red", "retention-error"),
        spacing="3",
        width="100%",
        padding_top="0.5rem",
        data_testid="retention",
    )


def privacy_section() -> rx.Component:
    """Sessions and chat retention, for the account page (loads itself when shown)."""
    return rx.vstack(_sessions(), _retention(), spacing="5", width="100%", on_mount=PrivacyState.load_privacy)
