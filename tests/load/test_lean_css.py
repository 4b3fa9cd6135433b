"""The lean Radix stylesheet (rubin_app/lean_css.py): what goes, what stays, and that nothing Rubin draws goes."""

from __future__ import annotations

import re
from pathlib import Path

from rubin_app.lean_css import UNUSED, lean, radix_css

ROOT = Path(__file__).resolve().parents[2]

CSS = """.rt-reset:where(body, blockquote, p){margin:0}
.rt-Button{color:red}
.rt-DataListRoot{display:grid}
.rt-TabsList, .rt-Select{gap:1px}
.rt-Emphasis-like{x:y}
@keyframes rt-fade{from{opacity:0}to{opacity:1}}
@media (hover: hover){.rt-Button:hover{color:blue}.rt-SliderThumb:hover{color:blue}}
@media (min-width: 768px){.md\\:rt-r-size-2{width:2px}.rt-r-size-2{width:1px}}
@media (min-width: 1024px){.lg\\:rt-r-p-3{padding:3px}}
"""


def test_unused_components_and_responsive_variants_go_the_rest_stays() -> None:
    out = lean(CSS)
    kept = (".rt-reset:where(body, blockquote, p){margin:0}", ".rt-Button{color:red}", ".rt-Select{gap:1px}",
            ".rt-Emphasis-like{x:y}", "@keyframes rt-fade{from{opacity:0}to{opacity:1}}",
            "@media (hover: hover){.rt-Button:hover{color:blue}}",
            "@media (min-width: 768px){.rt-r-size-2{width:1px}}")  # fmt: skip
    for rule in kept:
        assert rule in out
    for gone in ("DataList", "TabsList", "Slider", "md\\:", "lg\\:", "1024px"):
        assert gone not in out


def test_without_the_package_the_whole_files_are_imported(tmp_path: Path) -> None:
    assert radix_css(tmp_path) == (
        "@import url('@radix-ui/themes/components.css');\n@import url('@radix-ui/themes/utilities.css');\n"
    )


def test_no_page_uses_a_component_left_out() -> None:
    """A Radix component on the list must not be drawn anywhere (it would show unstyled)."""
    names = {
        "DataList": "data_list", "Kbd": "kbd", "Avatar": "avatar", "Inset": "inset", "Slider": "slider",
        "RadioCards": "radio_cards", "CheckboxCards": "checkbox_cards", "BaseRadio": "radio",
        "RadioGroup": "radio_group",
        "Section": "section", "Container": "container", "HoverCard": "hover_card", "BaseTabList": "tabs",
        "Tabs": "tabs", "TabNav": "tab_nav", "ThemePanel": "theme_panel", "ContextMenu": "context_menu",
        "Skeleton": "skeleton", "Quote": "quote", "Blockquote": "blockquote", "Em": "em",
        "CheckboxGroup": "checkbox_group", "Separator": "separator|divider",
    }  # fmt: skip
    assert set(names) == set(UNUSED)
    pattern = re.compile(r"\brx\.(?:" + "|".join(names.values()) + r")\b")
    used = [f"{p}: {m}" for p in (ROOT / "rubin_app").rglob("*.py") for m in pattern.findall(p.read_text())]
    assert used == []
