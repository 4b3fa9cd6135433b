"""Safe Markdown for model output: no raw HTML, links open in a new tab without opener."""

from __future__ import annotations

import reflex as rx
from reflex.vars.base import Var


def _link(text: Var, **props) -> rx.Component:
    return rx.link(text, is_external=True, rel="noopener noreferrer nofollow", **props)


def _code_block(text: Var, **props) -> rx.Component:
    return rx.code_block(text, can_copy=True, wrap_long_lines=False, margin_y="0.5em", font_size="0.85em", **props)


COMPONENT_MAP = {"a": _link, "pre": _code_block}


def markdown(source: Var | str, **props) -> rx.Component:
    """Render Markdown (GFM tables, lists, code) without executing HTML from the text."""
    return rx.markdown(
        source,
        component_map=COMPONENT_MAP,
        use_raw=False,
        use_math=False,
        use_katex=False,
        class_name="rubin-md",
        **props,
    )


@rx.memo
def finished_markdown(source: rx.Var[str]) -> rx.Component:
    """Markdown of a finished text (React-memoised: parsed again only when the text changes, not on every
    update of the page, e.g. when the next question is sent below the last answer)."""
    return markdown(source)
