"""The first load carries only the Radix colour scales Rubin names (rxconfig.LeanRadixThemes): every scale the code
uses must be in that list, or its colours would silently fall back to the accent."""

from __future__ import annotations

import re
from pathlib import Path

import rxconfig

ROOT = Path(__file__).resolve().parents[2]
RADIX_SCALES = {
    "gray", "mauve", "slate", "sage", "olive", "sand", "tomato", "red", "ruby", "crimson", "pink", "plum", "purple",
    "violet", "iris", "indigo", "blue", "cyan", "teal", "jade", "green", "grass", "bronze", "gold", "brown",
    "orange", "amber", "yellow", "lime", "mint", "sky",
}  # fmt: skip
QUOTED = re.compile(r"""["']([a-z]+)["']""")


def used_scales() -> set[str]:
    """Radix scale names written as string literals in the app's UI code and rxconfig.py."""
    files = [ROOT / "rxconfig.py", *(ROOT / "rubin_app").rglob("*.py")]
    found: set[str] = set()
    for path in files:
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            if re.search(r"color(_scheme)?\s*=|accent_color|gray_color|\(\"(ready|failed|cancelled)\"", line):
                found |= {name for name in QUOTED.findall(line) if name in RADIX_SCALES}
    return found


def test_every_colour_scale_the_code_names_is_in_the_first_load() -> None:
    kept = set(rxconfig.LeanRadixThemes.colors)
    assert {"ruby", "sand"} <= used_scales()  # the scan finds the theme's own colours
    assert used_scales() <= kept, f"add to LeanRadixThemes.colors: {sorted(used_scales() - kept)}"


def test_the_stylesheet_list_names_files_radix_ships() -> None:
    plugin = rxconfig.LeanRadixThemes()
    paths = plugin.get_stylesheet_paths()
    modules = ROOT / ".web" / "node_modules"
    assert paths[0] == "@radix-ui/themes/tokens/base.css" and paths[-1] == "./radix-lean.css"  # lean_css.py
    if (modules / "@radix-ui" / "themes").is_dir():  # after a build: each file exists in the installed package
        assert all((modules / p).is_file() for p in paths[:-1]), paths
        ((_, lean),) = [a for a in plugin.get_static_assets() if str(a[0]) == "styles/radix-lean.css"]
        assert ".rt-Button" in lean and "@import" not in lean  # made from the package, not the fallback
