"""Theme tokens and shared styles: the one place for colours, spacing and sizes."""

from __future__ import annotations

import reflex as rx

SIDEBAR_WIDTH = "17rem"
CONTENT_WIDTH = "48rem"
TOUCH = "2.75rem"  # 44 px touch targets
RADIUS = "var(--radius-3)"

accent = rx.color("accent", 9)
border = f"1px solid {rx.color('gray', 5)}"
muted = rx.color("gray", 11)
surface = rx.color("gray", 2)
panel = rx.color("gray", 1)

# Scoped by Reflex under the app's root element; rules for html/body and <html> attributes are in
# assets/rubin.css.
GLOBAL_STYLE: dict = {
    ".rubin-md pre": {"max_width": "100%", "overflow_x": "auto"},
    ".rubin-md table": {"display": "block", "overflow_x": "auto", "border_collapse": "collapse"},
    ".rubin-md th, .rubin-md td": {"border": border, "padding": "0.25rem 0.5rem"},
    ".rubin-md p": {"margin": "0.5em 0"},
    ".rubin-md img": {"max_width": "100%"},
    # A message's text while the Markdown renderer loads (components/markdown.py): as written, wrapped.
    ".rubin-md-plain": {"white_space": "pre-wrap", "overflow_wrap": "anywhere", "margin": "0.5em 0"},
    # Radix ScrollArea sizes its content to fit-content: long titles then push the chat menus out of the
    # sidebar/drawer. Pin the list to the scroll area's width so titles are cut with an ellipsis.
    ".rubin-chat-list .rt-ScrollAreaViewport > *": {"width": "100%"},
}
