"""The account page's developer section: API keys (create, shown once, revoke) and the user's own usage."""

from __future__ import annotations

import reflex as rx

from rubin_app import i18n
from rubin_app.accounts import api_keys
from rubin_app.components import styles
from rubin_app.components.auth_forms import field, notice
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState
from rubin_app.usage import service as usage

T = AuthState.tr
EXPIRY_CHOICES = ("never", "30", "90", "365")


class ApiKeysState(AuthState):
    """The signed-in user's keys and usage; every handler re-checks the session."""

    keys: list[dict[str, str]] = []
    usage_by_model: list[dict[str, str]] = []
    new_key: str = ""  # the key just created: shown once, dropped on the next load
    keys_error: str = ""
    expiry: str = "never"
    may_create: bool = True  # the user's groups allow API keys (the service checks again)

    @rx.event
    async def load(self) -> None:
        """Read the user's keys and the last 30 days of usage (a key shown once is not shown again)."""
        self.new_key = ""
        principal = await self._principal()
        if principal is None:
            return
        lang = self.lang or i18n.DEFAULT_LANGUAGE
        async with session_scope(read_only=True) as session:
            rows = await api_keys.list_keys(session=session, user_id=principal.user_id)
            by_model = await usage.summary(session=session, user_id=principal.user_id, days=30, by="model")
        self.keys = [
            {
                "id": str(k.id), "name": k.name, "prefix": k.prefix + "…", "scopes": k.scopes.replace(" ", ", "),
                "state": "revoked" if k.revoked_at else "active",
                "used": i18n.when(k.last_used_at, lang) if k.last_used_at else self._t("key_never_used"),
                "expires": i18n.stamp(k.expires_at, lang) if k.expires_at else self._t("key_no_expiry"),
            }
            for k in rows
        ]  # fmt: skip
        self.usage_by_model = [
            {"model": r["group"] or "", "requests": str(r["requests"]), "tokens": f"{r['total_tokens']:,}"}
            for r in by_model
        ]
        self.keys_error = ""
        self.may_create = (await get_runtime().permissions.get(principal.user_id)).api_keys

    @rx.event
    def set_expiry(self, value: str) -> None:
        """The expiry picked for the next key."""
        self.expiry = value if value in EXPIRY_CHOICES else "never"

    @rx.event
    async def create(self, form: dict) -> None:
        """Create a key with the chosen name and scopes; it is shown once."""
        principal = await self._require()
        scopes = [s for s in api_keys.SCOPES if form.get(f"scope_{s}") in ("on", True, "true")]
        try:
            async with session_scope() as session:
                _, plain = await api_keys.create_key(
                    session=session, user_id=principal.user_id, name=str(form.get("name", "")), scopes=scopes or None,
                    expires_days=None if self.expiry == "never" else float(self.expiry), actor_id=principal.user_id,
                    ip=self._client_ip(),
                )  # fmt: skip
        except InputError as exc:
            self.keys_error = self._t(f"err_{exc.code}", **exc.params)
            return
        await self.load()
        self.new_key = plain

    @rx.event
    async def revoke(self, key_id: str) -> None:
        """Revoke one of the user's keys (at once, on every worker)."""
        principal = await self._require()
        try:
            async with session_scope() as session:
                row = await api_keys.revoke_key(
                    session=session, key_id=int(key_id), user_id=principal.user_id, actor_id=principal.user_id,
                    ip=self._client_ip(),
                )  # fmt: skip
                digest = row.key_hash
        except (InputError, ValueError):
            self.keys_error = self._t("err_key_not_found")
            return
        await get_runtime().keys.revoked(digest)
        self.new_key = ""
        await self.load()


def _key_row(key: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(key["name"], weight="medium"), rx.text(key["prefix"], size="1", color=styles.muted)),
        rx.table.cell(rx.text(key["scopes"], size="1")),
        rx.table.cell(rx.text(key["used"], size="1"), rx.text(key["expires"], size="1", color=styles.muted)),
        rx.table.cell(
            rx.cond(
                key["state"] == "active",
                rx.button(
                    T["key_revoke"],
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    on_click=ApiKeysState.revoke(key["id"]),
                    data_testid="revoke-key",
                ),
                rx.badge(T["key_revoked"], color_scheme="gray"),
            )
        ),
        data_testid="key-row",
    )


def api_keys_section() -> rx.Component:
    """Keys and usage, for the account page."""
    return rx.vstack(
        rx.heading(T["api_keys"], size="4"),
        rx.text(T["api_keys_body"], size="2", color=styles.muted),
        rx.cond(
            ~ApiKeysState.may_create,
            rx.callout(T["err_api_keys_not_allowed"], color_scheme="gray", data_testid="keys-not-allowed"),
        ),
        rx.form(
            rx.vstack(
                field(T["key_name"], name="name", max_length=100, required=True, data_testid="key-name"),
                rx.hstack(
                    *[
                        rx.checkbox(scope, name=f"scope_{scope}", default_checked=scope in api_keys.DEFAULT_SCOPES)
                        for scope in api_keys.SCOPES[:3]
                    ],
                    wrap="wrap",
                    spacing="3",
                ),
                rx.hstack(
                    rx.text(T["key_expiry"], size="2", weight="medium", flex="1"),
                    rx.select.root(
                        rx.select.trigger(aria_label=T["key_expiry"], data_testid="key-expiry"),
                        rx.select.content(
                            rx.select.item(T["key_no_expiry"], value="never"),
                            *[rx.select.item(T["key_days"].replace("{days}", d), value=d) for d in EXPIRY_CHOICES[1:]],
                        ),
                        value=ApiKeysState.expiry,
                        on_change=ApiKeysState.set_expiry,
                    ),
                    width="100%",
                    align="center",
                ),
                rx.button(T["key_create"], type="submit", size="3", min_height=styles.TOUCH, data_testid="create-key"),
                width="100%",
            ),
            on_submit=ApiKeysState.create,
            reset_on_submit=True,
            width="100%",
            display=rx.cond(ApiKeysState.may_create, "block", "none"),
        ),
        notice(ApiKeysState.keys_error, "red", "keys-error"),
        rx.cond(
            ApiKeysState.new_key != "",
            rx.callout(
                rx.vstack(
                    rx.text(T["key_shown_once"], size="2"),
                    rx.code(ApiKeysState.new_key, data_testid="new-key", style={"word_break": "break-all"}),
                ),
                color_scheme="green",
                width="100%",
            ),
        ),
        rx.cond(
            ApiKeysState.keys.length() > 0,
            rx.table.root(rx.table.body(rx.foreach(ApiKeysState.keys, _key_row)), size="1", width="100%"),
        ),
        rx.heading(T["usage_30_days"], size="4", padding_top="0.5rem"),
        rx.cond(
            ApiKeysState.usage_by_model.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell(T["usage_model"]),
                        rx.table.column_header_cell(T["usage_requests"]),
                        rx.table.column_header_cell(T["usage_tokens"]),
                    )
                ),
                rx.table.body(
                    rx.foreach(
                        ApiKeysState.usage_by_model,
                        lambda r: rx.table.row(
                            rx.table.cell(r["model"]),
                            rx.table.cell(r["requests"], data_testid="usage-requests"),
                            rx.table.cell(r["tokens"]),
                            data_testid="usage-row",
                        ),
                    )
                ),
                size="1",
                width="100%",
            ),
            rx.text(T["usage_none"], size="2", color=styles.muted),
        ),
        spacing="3",
        width="100%",
        padding_top="0.5rem",
        id="api-keys",  # the sessions section links here (last use of each key)
        data_testid="api-keys",
    )
