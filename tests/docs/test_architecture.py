"""Dependencies point one way (architecture.md): services/models/api never import Reflex or UI code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "rubin_app"

RULES = {
    "services": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.api"),
    "models": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.services"),
    "api": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages"),
    "components": ("rubin_app.services", "sqlmodel", "sqlalchemy", "httpx"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports_point_one_way(layer: str) -> None:
    files = sorted((PKG / layer).rglob("*.py"))
    assert files, f"no modules in {layer}"
    bad = [
        f"{f.relative_to(PKG)} imports {name}"
        for f in files
        for name in _imports(f)
        if any(name == p or name.startswith(p + ".") for p in RULES[layer])
    ]
    assert not bad, "\n".join(bad)
