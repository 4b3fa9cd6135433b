"""Admin: how long chats are kept on this instance (the default users may only shorten), and the other
retention periods in force (settings)."""

from __future__ import annotations

import reflex as rx

from rubin_app.admin.state import AdminState
from rubin_app.components import styles
from rubin_app.components.auth_forms import notice
from rubin_app.services import retention
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState

T = AuthState.tr


class RetentionAdminState(AdminState):
    """The instance's chat retention (days; 0: forever)."""

    chat_days: str = "0"
    other_periods: str = ""  # audit, usage and delivery retention from settings (read-only here)
    retention_notice: str = ""
    retention_error: str = ""

    @rx.event
    async def load_retention(self) -> None:
        """Read the retention in force (admins only)."""
        await self._require(admin=True)
        settings = get_runtime().settings
        async with session_scope(read_only=True) as session:
            self.chat_days = str(await retention.instance_days(session=session, settings=settings))
        self.other_periods = self._t(
            "retention_other_periods", audit=settings.audit_retention_days, usage=settings.usage_retention_days,
            deliveries=settings.webhook_delivery_retention_days,
        )  # fmt: skip
        self.retention_notice = self.retention_error = ""

    @rx.event
    async def save_chat_days(self, form: dict) -> None:
        """Set how many days chats are kept after their last activity (0: forever)."""
        principal = await self._require(admin=True)
        raw = str(form.get("days", "")).strip()
        self.retention_notice = self.retention_error = ""
        try:
            if not raw.isdigit():
                raise InputError("bad_retention", max=retention.MAX_DAYS)
            async with session_scope() as session:
                days = await retention.set_instance_days(
                    session=session, actor_id=principal.user_id, days=int(raw), ip=self._client_ip()
                )
        except InputError as exc:
            self.retention_error = self._t(f"err_{exc.code}", **exc.params)
            return
        self.chat_days, self.retention_notice = str(days), self._t("saved")


def retention_section() -> rx.Component:
    """The retention form of the admin page."""
    return rx.vstack(
        rx.heading(T["retention_title"], size="4"),
        rx.text(T["retention_admin_body"], size="2", color=styles.muted),
        rx.form(
            rx.hstack(
                rx.input(
                    name="days",
                    key=RetentionAdminState.chat_days,  # drawn again with the saved value
                    default_value=RetentionAdminState.chat_days,
                    type="number",
                    min=0,
                    max=retention.MAX_DAYS,
                    aria_label=T["retention_admin_days"],
                    size="3",
                    data_testid="retention-days",
                ),
                rx.text(T["retention_admin_days"], size="2"),
                rx.button(T["save"], type="submit", size="3", data_testid="retention-save"),
                align="center",
                spacing="3",
            ),
            on_submit=RetentionAdminState.save_chat_days,
        ),
        rx.text(RetentionAdminState.other_periods, size="1", color=styles.muted),
        notice(RetentionAdminState.retention_notice, "green", "retention-notice"),
        notice(RetentionAdminState.retention_error, "red", "retention-error"),
        width="100%",
        on_mount=RetentionAdminState.load_retention,
        data_testid="admin-retention",
    )
