"""Shared pieces of the sign-in, account and admin pages: a centred card, labelled fields, POST forms."""

from __future__ import annotations

import reflex as rx
from reflex_components_core.el.elements.forms import Form

from rubin_app.components import styles
from rubin_app.components.prefs import theme_appliers


class NativeForm(Form):
    """A form the browser submits itself: Reflex's Form always adds a submit handler that prevents it."""

    @classmethod
    def create(cls, *children, **props):
        """Create the form without the default `on_submit=prevent_default`."""
        props["handle_submit_unique_name"] = ""  # skips Form.create's hook hashing; no handler is rendered
        return super(Form, cls).create(*children, **props)


native_form = NativeForm.create


def page_card(*children: rx.Component, width: str = "26rem", testid: str = "") -> rx.Component:
    """A centred card that fills a phone's width and stays narrow on a desktop."""
    return rx.center(
        rx.card(
            rx.vstack(*children, spacing="4", width="100%"),
            width="100%",
            max_width=width,
            size="3",
            data_testid=testid,
        ),
        theme_appliers(),
        min_height="100dvh",
        padding="1rem",
        background=styles.surface,
    )


def field(label: rx.Var | str, *, name: str, type: str = "text", **props) -> rx.Component:
    """A labelled input that a plain HTML form posts (name=...)."""
    return rx.el.label(
        rx.text(label, size="2", weight="medium"),
        rx.input(name=name, type=type, size="3", width="100%", **props),
        display="flex",
        flex_direction="column",
        gap="0.35rem",
        width="100%",
    )


def post_form(*children: rx.Component, action: str, testid: str, **props) -> rx.Component:
    """A native HTML form POSTed to an /auth route (the server sets or clears the HttpOnly cookie)."""
    return native_form(
        rx.vstack(*children, spacing="3", width="100%"),
        action=action,
        method="post",
        width="100%",
        data_testid=testid,
        **props,
    )


def notice(text: rx.Var, color: str, testid: str) -> rx.Component:
    """A callout shown only when `text` is not empty."""
    return rx.cond(
        text != "",
        rx.callout(text, color_scheme=color, width="100%", role="alert", data_testid=testid),
    )


def touch_button(label: rx.Var | str, **props) -> rx.Component:
    """A full-width, touch-sized button."""
    return rx.button(label, size="3", width="100%", min_height=styles.TOUCH, **props)
