"""Admin: models and the response cache, Redis status, and per-user limits (issue #4)."""

from __future__ import annotations

import dataclasses

import reflex as rx

from rubin_app.admin.state import AdminState
from rubin_app.components import styles
from rubin_app.components.auth_forms import notice
from rubin_app.services import limits, model_settings
from rubin_app.services.chats import InputError
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import get_runtime
from rubin_app.state.auth import AuthState

T = AuthState.tr
LIMIT_FIELDS = ("requests_per_minute", "tokens_per_day", "concurrent")


@dataclasses.dataclass
class ModelRow:
    """A model LocalAI serves, and whether its answers are cached at any temperature."""

    name: str = ""
    cacheable: bool = False


class ResourcesState(AdminState):
    """Cache switches and stats, Redis status, the limits dialog."""

    models: list[ModelRow] = []
    cache_hits: int = 0
    cache_misses: int = 0
    redis_status: str = ""  # "off", "ok" or "away"
    limits_user: int = 0
    limits_email: str = ""
    limits_values: dict[str, str] = {}
    limits_defaults: dict[str, str] = {}
    limits_error: str = ""

    @rx.event
    async def load_resources(self):
        """Models with their cache switch, cache hits/misses, Redis status (admins only)."""
        await self._require(admin=True)
        rt = get_runtime()
        cacheable = await rt.cache_policy.refresh_cacheable(force=True)
        self.models = [ModelRow(name=m, cacheable=m in cacheable) for m in await rt.router.get()]
        stats = await rt.cache.stats()
        self.cache_hits, self.cache_misses = stats["hits"], stats["misses"]
        redis = await rt.redis_health()
        self.redis_status = "off" if not redis["configured"] else ("ok" if redis.get("ok") else "away")

    @rx.event
    async def set_cacheable(self, model: str, on: bool):
        """Cache a model's answers at any temperature, or only deterministic ones."""
        principal = await self._require(admin=True)
        rt = get_runtime()
        try:
            async with session_scope() as session:
                await model_settings.set_cacheable(
                    session=session, settings=rt.settings, actor_id=principal.user_id, model=model, on=bool(on),
                    ip=self._client_ip(),
                )  # fmt: skip
        except InputError as exc:
            self.error = self._t(f"err_{exc.code}", **exc.params)
        return ResourcesState.load_resources

    @rx.event
    async def open_limits(self, user_id: int, email: str):
        """Show a user's limits (empty fields: the defaults from settings)."""
        await self._require(admin=True)
        rt = get_runtime()
        async with session_scope() as session:
            row = await session.get(limits.UserLimit, int(user_id))
        s = rt.settings
        self.limits_defaults = {
            "requests_per_minute": str(s.rate_limit_rpm), "tokens_per_day": str(s.tokens_per_day),
            "concurrent": str(s.max_concurrent_answers),
        }  # fmt: skip
        self.limits_values = {
            f: "" if row is None or getattr(row, f) is None else str(getattr(row, f)) for f in LIMIT_FIELDS
        }
        self.limits_user, self.limits_email, self.limits_error = int(user_id), email, ""

    @rx.event
    def close_limits(self, is_open: bool = False) -> None:
        """Close the dialog."""
        if not is_open:
            self.limits_user = 0

    @rx.event
    async def save_limits(self, form: dict):
        """Save the overrides (empty: back to the default; 0: no limit)."""
        principal = await self._require(admin=True)
        try:
            values = {f: _number(form.get(f, "")) for f in LIMIT_FIELDS}
            async with session_scope() as session:
                await limits.set_limits(session=session, actor_id=principal.user_id, user_id=self.limits_user, **values)
        except InputError as exc:
            self.limits_error = self._t(f"err_{exc.code}", **exc.params)
            return
        get_runtime().admission.forget_limits(self.limits_user)
        self.limits_user = 0


def _number(raw: object) -> int | None:
    text = str(raw or "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise InputError("bad_limit")
    return int(text)


def limits_button(user_id: rx.Var, email: rx.Var) -> rx.Component:
    """The per-user "limits" button of the users table."""
    return rx.icon_button(
        rx.icon("gauge", size=14),
        variant="ghost",
        color_scheme="gray",
        aria_label=T["limits"],
        on_click=ResourcesState.open_limits(user_id, email),
        data_testid="user-limits",
    )


def _limit_field(name: str, label: rx.Var) -> rx.Component:
    return rx.el.label(
        rx.text(label, size="2"),
        rx.input(
            name=name,
            default_value=ResourcesState.limits_values[name],
            placeholder=T["default_value"] + " " + ResourcesState.limits_defaults[name],
            input_mode="numeric",
            data_testid=f"limit-{name}",
        ),
        display="flex",
        flex_direction="column",
        gap="0.25rem",
    )


def limits_dialog() -> rx.Component:
    """Per-user overrides of requests per minute, tokens per day and answers at once."""
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(T["limits"] + " · " + ResourcesState.limits_email),
            rx.dialog.description(T["limits_help"], size="2", color=styles.muted),
            rx.form(
                rx.vstack(
                    _limit_field("requests_per_minute", T["limit_rpm"]),
                    _limit_field("tokens_per_day", T["limit_tokens"]),
                    _limit_field("concurrent", T["limit_concurrent"]),
                    notice(ResourcesState.limits_error, "red", "limits-error"),
                    rx.hstack(
                        rx.dialog.close(rx.button(T["cancel"], type="button", variant="soft", color_scheme="gray")),
                        rx.button(T["save"], type="submit", data_testid="save-limits"),
                        justify="end",
                        width="100%",
                    ),
                    spacing="3",
                    padding_top="0.75rem",
                ),
                on_submit=ResourcesState.save_limits,
            ),
            key=ResourcesState.limits_user,
        ),
        open=ResourcesState.limits_user != 0,
        on_open_change=ResourcesState.close_limits,
    )


def models_section() -> rx.Component:
    """Models and the response cache."""
    status = rx.match(
        ResourcesState.redis_status,
        ("ok", T["redis_ok"]),
        ("away", T["redis_away"]),
        T["redis_off"],
    )
    return rx.vstack(
        rx.heading(T["models_cache"], size="4"),
        rx.hstack(
            rx.text(
                T["cache_stats"]
                .replace("{hits}", ResourcesState.cache_hits.to_string())
                .replace("{misses}", ResourcesState.cache_misses.to_string())
            ),
            rx.text("·"),
            rx.text(status),
            size="2",
            color=styles.muted,
            spacing="2",
            wrap="wrap",
            data_testid="cache-stats",
        ),
        rx.foreach(
            ResourcesState.models,
            lambda m: rx.el.label(
                rx.hstack(
                    rx.switch(
                        checked=m.cacheable,
                        on_change=lambda v: ResourcesState.set_cacheable(m.name, v),
                        data_testid="cache-switch",
                    ),
                    rx.text(m.name, size="2", weight="medium"),
                    rx.text(T["cache_any_temperature"], size="1", color=styles.muted),
                    align="center",
                    spacing="3",
                    min_height=styles.TOUCH,
                )
            ),
        ),
        width="100%",
        on_mount=ResourcesState.load_resources,
    )
