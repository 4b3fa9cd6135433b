"""Dependencies point one way (architecture.md), and every package the code imports is pinned.

- services/models/api never import Reflex or UI code; components never reach the database or the network;
  state (the Reflex states) never imports the pages that show it; pages and admin build on state,
  components and services only; nothing imports the app module (`rubin_app.rubin_app`), which wires it all.
- Every third-party module imported anywhere in rubin_app/ comes from a distribution pinned (==) in
  requirements.txt (or, for the bundled engine only, requirements-engine.txt): nothing arrives only
  because another package happens to depend on it today.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "rubin_app"
APP_MODULE = "rubin_app.rubin_app"

# Imports a layer must not make (a name or any module below it).
FORBIDDEN = {
    "services": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
                 "rubin_app.api"),
    "models": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
               "rubin_app.api", "rubin_app.services"),
    "api": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin"),
    "components": ("rubin_app.services", "rubin_app.pages", "rubin_app.admin", "rubin_app.api", "sqlmodel",
                   "sqlalchemy", "httpx"),
    "state": ("rubin_app.pages", "rubin_app.admin", "rubin_app.components"),
    "pages": (),
    "admin": (),
    # The bottom layer: errors, the outbound-request guard. Imports nothing of Rubin but config.
    "core": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
             "rubin_app.api", "rubin_app.services", "rubin_app.models", "rubin_app.llm", "rubin_app.accounts",
             "rubin_app.usage", "rubin_app.webhooks"),
    # Typed LLM requests and events: no database, no domain package.
    "llm": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
            "rubin_app.api", "rubin_app.services", "rubin_app.models", "rubin_app.accounts", "rubin_app.usage",
            "rubin_app.webhooks"),
    # Domain packages (a table, a service, rules of their own): never the UI or the HTTP layer.
    "accounts": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
                 "rubin_app.api"),
    "generation": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
                   "rubin_app.api"),
    "usage": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
              "rubin_app.api"),
    "webhooks": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
                 "rubin_app.api"),
    # Prometheus figures: a sink and an ASGI layer. Never the UI or the HTTP routes.
    "observability": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
                      "rubin_app.api"),
    # Encryption at rest: keys, sealing, the ORM hooks. Never the UI or the HTTP layer.
    "vault": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
              "rubin_app.api"),
    # Backups and restore (docs/backup.md): operator work on the database and files. Never the UI or the HTTP layer.
    "backup": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
               "rubin_app.api"),
    # Knowledge bases (docs/ingestion.md, docs/knowledge.md): extraction, chunking, index, retrieval. Never the UI
    # or the HTTP layer.
    "knowledge": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
                  "rubin_app.api"),
    # Assistants, custom instructions and memory (issue #15): domain packages, never the UI or the HTTP layer.
    "assistants": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
                   "rubin_app.api"),
    "memory": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
               "rubin_app.api"),
    # Model connections (docs/connections.md): the table, its service, the router. Never the UI or the HTTP layer.
    "connections": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
                    "rubin_app.api"),
    "i18n": ("reflex", "rubin_app.state", "rubin_app.components", "rubin_app.pages", "rubin_app.admin",
             "rubin_app.api", "rubin_app.services", "rubin_app.models"),
}  # fmt: skip
# The only parts of rubin_app a layer may import (besides itself), where the rule is an allow-list.
ALLOWED = {
    "pages": ("rubin_app.state", "rubin_app.components", "rubin_app.services", "rubin_app.models",
              "rubin_app.config", "rubin_app.i18n", "rubin_app.accounts", "rubin_app.usage", "rubin_app.webhooks"),
    "admin": ("rubin_app.state", "rubin_app.components", "rubin_app.services", "rubin_app.models",
              "rubin_app.config", "rubin_app.i18n", "rubin_app.accounts", "rubin_app.usage", "rubin_app.webhooks",
              "rubin_app.connections"),
}  # fmt: skip
# The bundled engine's packages are installed on demand (scripts/run.sh), from their own pins.
ENGINE_REQUIREMENTS = ROOT / "requirements-engine.txt"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, absolute (`from . import x` resolved; `from a import b` gives a and a.b)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names if a.name != "*")
    return names


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _layers() -> list[str]:
    return sorted(p.parent.name for p in PKG.glob("*/__init__.py"))


def test_every_package_has_a_rule() -> None:
    """A new package gets its place in the direction of dependencies before it gets code."""
    assert sorted(FORBIDDEN) == _layers()


@pytest.mark.parametrize("layer", _layers())
def test_layer_imports_point_one_way(layer: str) -> None:
    files = sorted((PKG / layer).rglob("*.py"))
    assert files, f"no modules in {layer}"
    own = f"rubin_app.{layer}"
    allowed = (own, *ALLOWED[layer]) if layer in ALLOWED else None
    bad = sorted(
        f"{f.relative_to(PKG)} imports {name}"
        for f in files
        for name in _imports(f)
        if _matches(name, FORBIDDEN.get(layer, ()))
        or (allowed is not None and name.startswith("rubin_app.") and not _matches(name, allowed))
    )
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_app_module() -> None:
    """`rubin_app.rubin_app` builds the app (pages, routes, lifespan): importing it anywhere else would
    build it twice or in a loop."""
    bad = sorted(
        f"{f.relative_to(ROOT)} imports {name}"
        for f in PKG.rglob("*.py")
        for name in _imports(f)
        if _matches(name, (APP_MODULE,)) and f != PKG / "rubin_app.py"
    )
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- pins


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    """{normalized distribution: line} of the `name[extras]==version` lines of a requirements file."""
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if match := re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*\S+", line):
            pins[_normalize(match.group(1))] = line
    return pins


def _third_party_imports() -> dict[str, list[str]]:
    """{top-level module: [files importing it]} for every module outside the standard library and rubin_app."""
    found: dict[str, list[str]] = {}
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.partition(".")[0]
                if top != "rubin_app" and top not in sys.stdlib_module_names and top != "__future__":
                    files = found.setdefault(top, [])
                    if str(path.relative_to(ROOT)) not in files:
                        files.append(str(path.relative_to(ROOT)))
    return found


def test_requirements_parse() -> None:
    pins = _pins(ROOT / "requirements.txt")
    assert {"reflex", "redis", "httpx"} <= set(pins)
    lines = [
        line.split("#", 1)[0].strip()
        for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.split("#", 1)[0].strip()
    ]
    assert len(lines) == len(pins), "every line of requirements.txt is an exact pin (name==version)"


def test_every_imported_package_is_pinned() -> None:
    """`redis` (say) is imported directly: it must not arrive only through Reflex's dependencies."""
    app_pins = _pins(ROOT / "requirements.txt")
    engine_pins = _pins(ENGINE_REQUIREMENTS) if ENGINE_REQUIREMENTS.exists() else {}
    embed_pins = _pins(ROOT / "requirements-embed.txt")  # the bundled embedder's, installed with --no-deps
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module, files in sorted(_third_party_imports().items()):
        dists = {_normalize(d) for d in distributions.get(module, [])}
        if not dists:  # not installed here (e.g. the bundled engine before its first start): pinned under its name
            dists = {_normalize(module)}
        engine_only = set(files) <= {"rubin_app/engine.py", "rubin_app/engine_server.py"}
        embed_only = set(files) <= {"rubin_app/embed_model.py", "rubin_app/embed_server.py"}
        pinned = (
            set(app_pins) | (set(engine_pins) if engine_only else set()) | (set(embed_pins) if embed_only else set())
        )
        if not dists & pinned:
            missing.append(f"{module} (distribution {', '.join(sorted(dists))}; imported in {', '.join(files[:3])})")
    assert not missing, "imported but not pinned in requirements.txt (or requirements-embed.txt):\n" + "\n".join(
        missing
    )


def test_the_import_name_map_is_used() -> None:
    """Import names that differ from their distribution's name resolve through the installed metadata."""
    distributions = importlib.metadata.packages_distributions()
    expected = {"argon2": "argon2-cffi", "email_validator": "email-validator", "socketio": "python-socketio"}
    for module, distribution in expected.items():
        assert distribution in {_normalize(d) for d in distributions.get(module, [])}, module
