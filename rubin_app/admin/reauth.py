"""Admin: the "confirm it's you" dialog that a dangerous action opens when the server asks for a fresh
re-authentication (rubin_app/accounts/reauth.py)."""

from __future__ import annotations

import reflex as rx

from rubin_app.admin.state import AdminState
from rubin_app.components.auth_forms import notice
from rubin_app.state.auth import AuthState

T = AuthState.tr


def reauth_dialog() -> rx.Component:
    """ "Confirm it's you": the password again, or (a provider account) a fresh sign-in at the provider."""
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(T["reauth_title"]),
            rx.cond(
                AdminState.reauth_provider == "",
                rx.form(
                    rx.vstack(
                        rx.text(T["reauth_body"], size="2"),
                        rx.input(
                            name="password",
                            type="password",
                            auto_complete="current-password",
                            required=True,
                            aria_label=T["reauth_password"],
                            placeholder=T["reauth_password"],
                            data_testid="reauth-password",
                        ),
                        notice(AdminState.reauth_error, "red", "reauth-error"),
                        rx.hstack(
                            rx.dialog.close(rx.button(T["cancel"], type="button", variant="soft", color_scheme="gray")),
                            rx.button(T["reauth_confirm"], type="submit", data_testid="reauth-confirm"),
                            justify="end",
                            width="100%",
                        ),
                        spacing="3",
                    ),
                    on_submit=AdminState.confirm_reauth,
                    reset_on_submit=True,
                ),
                rx.vstack(
                    rx.text(T["reauth_provider_body"], size="2"),
                    rx.link(
                        rx.button(T["reauth_provider"]),
                        href="/auth/login/" + AdminState.reauth_provider + "?next=/admin&reauth=1",
                        data_testid="reauth-provider",
                    ),
                    spacing="3",
                ),
            ),
        ),
        open=AdminState.reauth_open,
        on_open_change=AdminState.reauth_open_changed,
    )
