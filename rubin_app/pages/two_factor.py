"""The set-up page (`/two-factor`): where the admin policy sends a user who must turn two-factor sign-in on."""

from __future__ import annotations

import reflex as rx

from rubin_app.components.auth_forms import page_card, post_form, touch_button
from rubin_app.components.two_factor import two_factor_section
from rubin_app.state.auth import AuthState
from rubin_app.state.two_factor import TwoFactorState

T = AuthState.tr


class TwoFactorSetupState(AuthState):
    """Only the guard: signed in and approved; the section's own state does the rest."""

    @rx.event
    async def on_load(self):
        """Signed out: to the login page; otherwise stay (also when the policy no longer asks)."""
        _, events = await self._enter(two_factor_setup=True)
        return events


def two_factor_page() -> rx.Component:
    """Turn on two-factor sign-in, then go on to the chat."""
    return page_card(
        rx.heading(T["two_factor_required_title"], size="6"),
        rx.text(T["two_factor_required_body"], size="2"),
        two_factor_section(),
        rx.cond(
            TwoFactorState.tf_enabled,
            touch_button(
                rx.el.a(T["continue"], href="/", reload_document=True, data_testid="two-factor-continue"),
                as_child=True,
            ),
        ),
        post_form(
            touch_button(T["sign_out"], type="submit", variant="outline"), action="/auth/logout", testid="sign-out"
        ),
        testid="two-factor-page",
    )
