"""The two-factor section (state/two_factor.py): turn on with a QR code, recovery codes, turn off. Used by the
account page and by the set-up page the admin policy sends users to."""

from __future__ import annotations

import reflex as rx

from rubin_app.components import styles
from rubin_app.components.auth_forms import field, notice, touch_button
from rubin_app.state.auth import AuthState
from rubin_app.state.two_factor import TwoFactorState

T = AuthState.tr
MONO = {"font_family": "ui-monospace, monospace", "word_break": "break-all"}


def _code_field(testid: str) -> rx.Component:
    return field(
        T["two_factor_code"], name="code", required=True, auto_complete="one-time-code", input_mode="numeric",
        max_length=20, data_testid=testid,
    )  # fmt: skip


def _form(*children: rx.Component, on_submit: rx.EventHandler, testid: str) -> rx.Component:
    return rx.form(
        rx.vstack(*children, spacing="3", width="100%"),
        on_submit=on_submit,
        reset_on_submit=True,
        width="100%",
        data_testid=testid,
    )


def _recovery_codes() -> rx.Component:
    return rx.cond(
        TwoFactorState.tf_codes.length() > 0,
        rx.callout.root(
            rx.vstack(
                rx.text(T["recovery_codes_title"], weight="bold"),
                rx.text(T["recovery_codes_body"], size="2"),
                rx.grid(
                    rx.foreach(TwoFactorState.tf_codes, lambda c: rx.text(c, style=MONO, data_testid="recovery-code")),
                    columns="2",
                    spacing="2",
                    width="100%",
                ),
                rx.button(T["recovery_codes_saved"], on_click=TwoFactorState.hide_codes, variant="soft", size="2"),
                spacing="2",
                width="100%",
            ),
            color_scheme="amber",
            width="100%",
            data_testid="recovery-codes",
        ),
    )


def _passkey_row(key: rx.Var) -> rx.Component:
    return rx.hstack(
        rx.text(key["name"], size="2"),
        rx.text(key["created"], size="1", color=styles.muted),
        rx.spacer(),
        rx.button(
            T["delete"],
            size="1",
            variant="soft",
            color_scheme="red",
            on_click=TwoFactorState.delete_passkey(key["id"]),
            data_testid="passkey-delete",
        ),
        width="100%",
        align="center",
        data_testid="passkey-row",
    )


def _passkeys() -> rx.Component:
    return rx.vstack(
        rx.text(T["passkeys"], size="2", weight="medium"),
        rx.text(T["passkey_hint"], size="1", color=styles.muted),
        rx.foreach(TwoFactorState.tf_passkeys, _passkey_row),
        touch_button(
            T["passkey_add"], on_click=TwoFactorState.begin_passkey, variant="soft", data_testid="passkey-add"
        ),
        spacing="2",
        width="100%",
    )


def _enabled() -> rx.Component:
    return rx.vstack(
        rx.text(
            T["two_factor_on_body"].replace("{count}", TwoFactorState.tf_codes_left.to_string()),
            size="2",
            data_testid="two-factor-status",
        ),
        _passkeys(),
        _form(
            _code_field("regenerate-code"),
            touch_button(T["recovery_regenerate"], type="submit", variant="soft", data_testid="regenerate-codes"),
            on_submit=TwoFactorState.regenerate_codes,
            testid="regenerate-form",
        ),
        _form(
            field(
                T["current_password"],
                name="password",
                type="password",
                required=True,
                auto_complete="current-password",
                data_testid="off-password",
            ),
            _code_field("off-code"),
            touch_button(
                T["two_factor_turn_off"],
                type="submit",
                variant="outline",
                color_scheme="red",
                data_testid="two-factor-off",
            ),
            on_submit=TwoFactorState.disable_two_factor,
            testid="two-factor-off-form",
        ),
        spacing="3",
        width="100%",
    )


def _setting_up() -> rx.Component:
    return rx.vstack(
        rx.text(T["two_factor_scan"], size="2"),
        rx.center(
            rx.image(src=TwoFactorState.tf_qr, alt=T["two_factor_qr"], width="12rem", height="12rem"),
            width="100%",
            data_testid="two-factor-qr",
        ),
        rx.code(TwoFactorState.tf_secret, style=MONO, data_testid="two-factor-secret"),
        _form(
            _code_field("setup-code"),
            touch_button(T["two_factor_confirm"], type="submit", data_testid="two-factor-confirm"),
            on_submit=TwoFactorState.confirm_two_factor,
            testid="two-factor-setup-form",
        ),
        spacing="3",
        width="100%",
    )


def _off() -> rx.Component:
    return rx.vstack(
        rx.text(T["two_factor_off_body"], size="2", color=styles.muted, data_testid="two-factor-status"),
        touch_button(
            T["two_factor_turn_on"],
            on_click=TwoFactorState.begin_two_factor,
            variant="soft",
            data_testid="two-factor-on",
        ),
        spacing="3",
        width="100%",
    )


def two_factor_section() -> rx.Component:
    """Two-factor sign-in of the signed-in user (local accounts; others are told their provider does it)."""
    return rx.vstack(
        rx.heading(T["two_factor"], size="4"),
        notice(TwoFactorState.tf_notice, "green", "two-factor-notice"),
        notice(TwoFactorState.tf_error, "red", "two-factor-error"),
        rx.cond(
            TwoFactorState.tf_local,
            rx.fragment(
                _recovery_codes(),
                rx.cond(
                    TwoFactorState.tf_enabled,
                    _enabled(),
                    rx.cond(TwoFactorState.tf_secret != "", _setting_up(), _off()),
                ),
            ),
            rx.text(T["two_factor_providers_note"], size="2", color=styles.muted),
        ),
        on_mount=TwoFactorState.load_two_factor,
        spacing="3",
        width="100%",
        padding_top="0.5rem",
        data_testid="two-factor-section",
    )
