"""Print the README's settings table from rubin_app.config.Settings (the single source of truth)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rubin_app.config import PROJECT_DIR, Settings


def rows() -> list[tuple[str, str, str]]:
    """(ENV_NAME, default, description) for every setting."""
    out = []
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        if default == []:
            default = ""
        if isinstance(default, Path):
            default = (
                "./" + str(default.relative_to(PROJECT_DIR)) if default.is_relative_to(PROJECT_DIR) else str(default)
            )
        shown = "(empty)" if default in ("", None) else f"`{default}`"
        out.append((name.upper(), shown, field.description or ""))
    return out


def table() -> str:
    """The Markdown table."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    lines += [f"| `{n}` | {d} | {m} |" for n, d, m in rows()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
