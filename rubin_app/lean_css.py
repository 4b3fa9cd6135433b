"""Radix Themes' component and utility CSS without what Rubin cannot use (build time, rxconfig.LeanRadixThemes).

Two kinds of rules go: those for Radix components no page of Rubin draws (`UNUSED`: a new one in the code needs its
name taken off the list, or it shows unstyled), and the responsive variants (`.md:rt-r-size-2`, inside
`@media (min-width...)`), which Radix only generates for object-valued props (`size={"initial": "1", "md": "2"}`);
Rubin's responsive layout uses Reflex's list props, which emotion turns into media queries of its own.
Everything else (tokens, resets, keyframes, hover and pointer media queries) is kept as it is.
"""

from __future__ import annotations

import re
from pathlib import Path

UNUSED = (
    "DataList", "Kbd", "Avatar", "Inset", "Slider", "RadioCards", "CheckboxCards", "BaseRadio", "RadioGroup",
    "Section", "Container", "HoverCard", "BaseTabList", "Tabs", "TabNav", "ThemePanel", "ContextMenu", "Skeleton",
    "Quote", "Blockquote", "Em", "CheckboxGroup", "Separator",
)  # fmt: skip
_UNUSED_CLASS = re.compile(r"\.rt-(?:" + "|".join(UNUSED) + r")(?:[A-Z][A-Za-z]*)?(?![\w-])")
_RESPONSIVE_CLASS = re.compile(r"\.(?:xs|sm|md|lg|xl)\\:")
_NESTED = ("@media", "@supports", "@layer", "@container")
SOURCES = ("components.css", "utilities.css")


def _items(css: str) -> list[tuple[str, str | None]]:
    """Top-level statements: (prelude, body) for blocks, (statement, None) for `@import ...;` and the like."""
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(css)
    while i < n:
        j = i
        while j < n and css[j] not in "{;}":
            j += 1
        if j >= n:
            break
        if css[j] != "{":
            if css[j] == ";" and css[i:j].strip():
                out.append((css[i:j].strip(), None))
            i = j + 1
            continue
        depth, k = 1, j + 1
        while depth and k < n:
            depth += {"{": 1, "}": -1}.get(css[k], 0)
            k += 1
        out.append((css[i:j].strip(), css[j + 1 : k - 1]))
        i = k
    return out


def _selectors(prelude: str) -> list[str]:
    """A selector list split at its top-level commas (not those inside `:where(a, b)`)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(prelude):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(prelude[start:i])
            start = i + 1
    return [*parts, prelude[start:]]


def lean(css: str) -> str:
    """`css` without rules whose every selector is an unused component's or a responsive variant."""
    out = []
    for prelude, body in _items(css):
        if body is None:
            out.append(prelude + ";")
        elif prelude.startswith(_NESTED):
            inner = lean(body)
            if inner:
                out.append(prelude + "{" + inner + "}")
        elif prelude.startswith("@"):
            out.append(prelude + "{" + body + "}")
        else:
            keep = [s for s in _selectors(prelude) if not _UNUSED_CLASS.search(s) and not _RESPONSIVE_CLASS.search(s)]
            if keep:
                out.append(",".join(keep) + "{" + body + "}")
    return "".join(out)


def radix_css(package_dir: Path) -> str:
    """The lean stylesheet made from the installed package, or (not installed yet) imports of the whole files."""
    if not all((package_dir / name).is_file() for name in SOURCES):
        return "".join(f"@import url('@radix-ui/themes/{name}');\n" for name in SOURCES)
    return "\n".join(lean((package_dir / name).read_text(encoding="utf-8")) for name in SOURCES)
