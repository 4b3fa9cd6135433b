"""The webhooks section (components/webhooks.py): the endpoints of a `WebhooksState` and a form to add one;
used by the account page (the user's endpoints) and the admin page (the instance's)."""

from __future__ import annotations

import reflex as rx

from rubin_app.components import styles
from rubin_app.components.auth_forms import field, notice
from rubin_app.state.auth import AuthState
from rubin_app.state.webhooks import WebhooksState

T = AuthState.tr


def _hook_row(state: type[WebhooksState], hook: rx.Var) -> rx.Component:
    def act(action: str, label: rx.Var, **props: object) -> rx.Component:
        return rx.button(label, size="1", variant="soft", on_click=state.hook_action(action, hook["id"]),
                         data_testid=f"hook-{action}", **props)  # fmt: skip

    return rx.vstack(
        rx.text(hook["url"], weight="medium", size="2", style={"word_break": "break-all"}),
        rx.text(hook["events"], size="1", color=styles.muted),
        rx.cond(hook["reason"] != "", rx.text(hook["reason"], size="1", color="red")),
        rx.hstack(
            rx.cond(hook["enabled"] != "", act("disable", T["hook_disable"]), act("enable", T["hook_enable"])),
            act("test", T["hook_test"]),
            rx.button(
                T["hook_log"],
                size="1",
                variant="soft",
                on_click=state.show_deliveries(hook["id"]),
                data_testid="hook-log",
            ),
            act("rotate", T["hook_rotate"]),
            act("delete", T["delete"], color_scheme="red"),
            wrap="wrap",
            spacing="2",
        ),
        rx.cond(
            state.deliveries_of == hook["id"],
            rx.vstack(
                rx.foreach(
                    state.deliveries,
                    lambda d: rx.hstack(
                        rx.text(d["event"], size="1", flex="1"),
                        rx.badge(d["status"], data_testid="delivery-status"),
                        rx.text(d["code"], size="1"),
                        rx.text(d["when"], size="1", color=styles.muted),
                        rx.button(T["hook_redeliver"], size="1", variant="ghost", on_click=state.redeliver(d["id"])),
                        width="100%",
                        align="center",
                        data_testid="delivery-row",
                    ),
                ),
                width="100%",
            ),
        ),
        width="100%",
        padding="0.5rem",
        border=styles.border,
        border_radius="8px",
        data_testid="hook-row",
    )


def webhooks_section(state: type[WebhooksState] = WebhooksState) -> rx.Component:
    """The endpoints of `state`'s scope, and a form to add one."""
    return rx.vstack(
        rx.heading(T["webhooks"], size="4"),
        rx.text(T["webhooks_body"], size="2", color=styles.muted),
        rx.cond(
            ~state.may_add,
            rx.callout(T["err_webhooks_not_allowed"], color_scheme="gray", data_testid="hooks-not-allowed"),
        ),
        rx.form(
            rx.vstack(
                field(
                    T["hook_url"], name="url", type="url", required=True, placeholder="https://", data_testid="hook-url"
                ),
                rx.hstack(
                    rx.foreach(state.event_names, lambda name: rx.checkbox(name, name="event_" + name)),
                    wrap="wrap",
                    spacing="3",
                ),
                rx.button(T["hook_add"], type="submit", size="3", min_height=styles.TOUCH, data_testid="hook-add"),
                width="100%",
            ),
            on_submit=state.create_hook,
            reset_on_submit=True,
            width="100%",
            display=rx.cond(state.may_add, "block", "none"),
        ),
        notice(state.hooks_error, "red", "hooks-error"),
        rx.cond(
            state.new_secret != "",
            rx.callout(
                rx.vstack(
                    rx.text(T["hook_secret_once"], size="2"),
                    rx.code(state.new_secret, data_testid="hook-secret", style={"word_break": "break-all"}),
                ),
                color_scheme="green",
                width="100%",
            ),
        ),
        rx.foreach(state.hooks, lambda hook: _hook_row(state, hook)),
        spacing="3",
        width="100%",
        padding_top="0.5rem",
        on_mount=state.load_hooks,
        data_testid=f"webhooks-{state.__name__}",
    )
