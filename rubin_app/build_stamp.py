"""Build once, start from the build: a stamp of everything the production frontend is made from.

`reflex run --env prod` compiles the app and runs bun and vite at every start (6-9 s here, more under load).
scripts/run.sh instead calls `python -m rubin_app.container build`, which builds (`reflex export`) only when
the stamp below differs from the one saved beside the last build, then starts from the build
(`python -m rubin_app.container serve`). The stamp is a SHA-256 of:

- the contents of every file the build reads: the app's package (pages, components, states, catalogs), `assets/`,
  `rxconfig.py`, `reflex.lock/` (the frontend packages) and `requirements.txt` (the Reflex version);
- the settings baked into the built page: the port and the public addresses its websocket is reached at
  (FRONTEND_PORT, API_URL, PUBLIC_URL, and whether the app serves TLS itself).

Content, not modification times: a fresh checkout of the same commit keeps its build.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rubin_app.config import Settings

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ("rubin_app", "assets", "rxconfig.py", "reflex.lock", "requirements.txt")
SKIP_DIRS = {"__pycache__", "external", ".pytest_cache"}  # assets/external: symlinks Reflex makes at compile
SKIP_SUFFIXES = (".pyc", ".pyo")
STAMP_NAME = "rubin-build.stamp"


def build_dir(root: Path = ROOT) -> Path:
    """Where the production frontend is built."""
    return root / ".web" / "build" / "client"


def _files(root: Path) -> list[Path]:
    """The build's input files under `root`, sorted (missing inputs are skipped)."""
    found: list[Path] = []
    for name in INPUTS:
        top = root / name
        if top.is_file():
            found.append(top)
            continue
        for path in top.rglob("*") if top.is_dir() else []:
            rel = path.relative_to(root)
            if path.is_file() and not SKIP_DIRS.intersection(rel.parts) and not path.name.endswith(SKIP_SUFFIXES):
                found.append(path)
    return sorted(found)


def baked_settings(settings: Settings) -> dict[str, str]:
    """The settings the built page carries (where it reaches the websocket)."""
    return {
        "frontend_port": str(settings.frontend_port),
        "api_url": settings.api_url,
        "public_url": settings.public_url,
        "tls": "1" if settings.tls_cert_file else "0",
    }


def compute(settings: Settings, root: Path = ROOT) -> str:
    """The stamp of the sources and settings a build made now would come from."""
    digest = hashlib.sha256()
    for key, value in sorted(baked_settings(settings).items()):
        digest.update(f"{key}={value}\n".encode())
    for path in _files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def saved(root: Path = ROOT) -> str:
    """The stamp saved with the current build ('' when there is none or it has no page)."""
    build = build_dir(root)
    if not (build / "index.html").is_file():
        return ""
    try:
        return (build.parent / STAMP_NAME).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def save(stamp: str, root: Path = ROOT) -> None:
    """Record `stamp` as the one the current build was made from."""
    (build_dir(root).parent / STAMP_NAME).write_text(stamp + "\n", encoding="utf-8")


def needs_build(settings: Settings, root: Path = ROOT) -> tuple[bool, str]:
    """(whether to build, the current stamp): True when there is no build or it was made from other inputs."""
    current = compute(settings, root)
    return saved(root) != current, current
