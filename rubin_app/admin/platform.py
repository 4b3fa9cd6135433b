"""Admin: everyone's API keys (revocable) and usage per user over the last 30 days."""

from __future__ import annotations

import reflex as rx

from rubin_app import i18n
from rubin_app.accounts import api_keys
from rubin_app.admin.state import AdminState
from rubin_app.components import styles
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState
from rubin_app.usage import service as usage

T = AuthState.tr


class PlatformState(AdminState):
    """All keys and usage (admins only; every handler re-checks)."""

    all_keys: list[dict[str, str]] = []
    usage_by_user: list[dict[str, str]] = []

    @rx.event
    async def load_platform(self) -> None:
        """Every user's keys, newest first, and each user's usage (30 days)."""
        await self._require(admin=True)
        lang = self.lang or i18n.DEFAULT_LANGUAGE
        async with session_scope(read_only=True) as session:
            rows = await api_keys.list_all_keys(session=session)
            per_user = await usage.summary(session=session, user_id=None, days=30, by="user")
            emails = {str(k.user_id): email for k, email in rows}
        self.all_keys = [
            {
                "id": str(k.id), "owner": email, "name": k.name, "prefix": k.prefix + "…", "scopes": k.scopes,
                "state": "revoked" if k.revoked_at else "active",
                "used": i18n.when(k.last_used_at, lang) if k.last_used_at else self._t("key_never_used"),
            }
            for k, email in rows
        ]  # fmt: skip
        self.usage_by_user = [
            {"user": emails.get(r["group"] or "", f"#{r['group']}"), "requests": str(r["requests"]),
             "tokens": f"{r['total_tokens']:,}"}
            for r in per_user
        ]  # fmt: skip

    @rx.event
    async def revoke_any(self, key_id: str) -> None:
        """Revoke anyone's key (audited with the admin as actor)."""
        principal = await self._require(admin=True)
        try:
            async with session_scope() as session:
                row = await api_keys.revoke_key(
                    session=session, key_id=int(key_id), user_id=None, actor_id=principal.user_id, ip=self._client_ip()
                )
                digest = row.key_hash
        except (InputError, ValueError):
            self.error = self._t("err_key_not_found")
            return
        await get_runtime().keys.revoked(digest)
        await self.load_platform()


def _key_row(key: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(key["owner"], size="1")),
        rx.table.cell(rx.text(key["name"], weight="medium"), rx.text(key["prefix"], size="1", color=styles.muted)),
        rx.table.cell(rx.text(key["scopes"], size="1")),
        rx.table.cell(rx.text(key["used"], size="1")),
        rx.table.cell(
            rx.cond(
                key["state"] == "active",
                rx.button(
                    T["key_revoke"],
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    on_click=PlatformState.revoke_any(key["id"]),
                    data_testid="admin-revoke-key",
                ),
                rx.badge(T["key_revoked"], color_scheme="gray"),
            )
        ),
        data_testid="admin-key-row",
    )


def platform_section() -> rx.Component:
    """Keys and usage of everyone."""
    return rx.vstack(
        rx.heading(T["api_keys"], size="4"),
        rx.cond(
            PlatformState.all_keys.length() > 0,
            rx.box(
                rx.table.root(rx.table.body(rx.foreach(PlatformState.all_keys, _key_row)), size="1", width="100%"),
                overflow_x="auto",
                width="100%",
            ),
            rx.text(T["usage_none"], size="2", color=styles.muted),
        ),
        rx.heading(T["usage_30_days_all"], size="4", padding_top="0.5rem"),
        rx.foreach(
            PlatformState.usage_by_user,
            lambda r: rx.hstack(
                rx.text(r["user"], size="2", flex="1"),
                rx.text(r["requests"], size="2"),
                rx.text(r["tokens"], size="2", color=styles.muted),
                width="100%",
                data_testid="admin-usage-row",
            ),
        ),
        width="100%",
        on_mount=PlatformState.load_platform,
        data_testid="admin-platform",
    )
