"""Admin: who must sign in with a second factor (nobody / admins / everyone; local accounts only)."""

from __future__ import annotations

import reflex as rx

from rubin_app.accounts import twofactor
from rubin_app.admin.state import AdminState
from rubin_app.components import styles
from rubin_app.components.auth_forms import notice
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState

T = AuthState.tr
LABELS = {"nobody": "policy_2fa_nobody", "admins": "policy_2fa_admins", "everyone": "policy_2fa_everyone"}


class TwoFactorPolicyState(AdminState):
    """The two-factor requirement in force (admins only; every handler re-checks)."""

    two_factor_required: str = "nobody"
    two_factor_policy_error: str = ""
    two_factor_reset_notice: str = ""

    @rx.event
    async def load_two_factor_policy(self) -> None:
        """Read the requirement (the admin's choice, else REQUIRE_TWO_FACTOR)."""
        await self._require(admin=True)
        async with session_scope(read_only=True) as session:
            value = await twofactor.get_requirement(session=session, settings=get_runtime().settings)
        self.two_factor_required, self.two_factor_policy_error = value, ""

    @rx.event
    async def set_two_factor_policy(self, value: str) -> None:
        """Require two-factor sign-in of nobody, admins or everyone."""
        principal = await self._require(admin=True)
        try:
            async with session_scope() as session:
                saved = await twofactor.set_requirement(
                    session=session, actor_id=principal.user_id, value=str(value)[:16], ip=self._client_ip(),
                    settings=get_runtime().settings,
                )  # fmt: skip
        except InputError as exc:
            self.two_factor_policy_error = self._t(f"err_{exc.code}", **exc.params)
            return
        self.two_factor_required, self.two_factor_policy_error = saved, ""

    @rx.event
    async def reset_two_factor(self, form: dict[str, str]) -> None:
        """Turn off the two-factor sign-in of the account with this email (it lost its phone and codes)."""
        principal = await self._require(admin=True)
        email = str(form.get("email", ""))[:254]
        try:
            async with session_scope() as session:
                await twofactor.reset(session=session, actor_id=principal.user_id, email=email, ip=self._client_ip())
        except InputError as exc:
            self.two_factor_policy_error, self.two_factor_reset_notice = self._t(f"err_{exc.code}", **exc.params), ""
            return
        self.two_factor_policy_error = ""
        self.two_factor_reset_notice = self._t("two_factor_reset_done", email=email.strip())


def two_factor_policy() -> rx.Component:
    """The select in the admin page's sign-in policy."""
    return rx.vstack(
        rx.hstack(
            rx.text(T["policy_two_factor"], size="2"),
            rx.select.root(
                rx.select.trigger(aria_label=T["policy_two_factor"], data_testid="policy-two-factor"),
                rx.select.content(
                    *[rx.select.item(T[LABELS[p]], value=p) for p in twofactor.POLICIES],
                ),
                value=TwoFactorPolicyState.two_factor_required,
                on_change=TwoFactorPolicyState.set_two_factor_policy,
            ),
            align="center",
            spacing="3",
            wrap="wrap",
            min_height=styles.TOUCH,
        ),
        rx.text(T["two_factor_providers_note"], size="1", color=styles.muted),
        rx.form(
            rx.hstack(
                rx.input(
                    name="email",
                    type="email",
                    required=True,
                    placeholder=T["email"],
                    aria_label=T["email"],
                    data_testid="two-factor-reset-email",
                ),
                rx.button(T["two_factor_reset"], type="submit", variant="soft", data_testid="two-factor-reset"),
                wrap="wrap",
                spacing="2",
            ),
            on_submit=TwoFactorPolicyState.reset_two_factor,
            reset_on_submit=True,
        ),
        notice(TwoFactorPolicyState.two_factor_reset_notice, "green", "two-factor-reset-notice"),
        notice(TwoFactorPolicyState.two_factor_policy_error, "red", "two-factor-policy-error"),
        on_mount=TwoFactorPolicyState.load_two_factor_policy,
        spacing="1",
        width="100%",
    )
