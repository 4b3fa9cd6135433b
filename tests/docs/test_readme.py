"""The README stays true to the code: settings table, commands, CI entry point."""

from __future__ import annotations

import re
from pathlib import Path

from rubin_app.config import Settings
from scripts.settings_table import table

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_settings_table_matches_the_code() -> None:
    block = re.search(r"<!-- settings-table -->\n(.*?)\n<!-- /settings-table -->", README, re.S)
    assert block, "README lacks the settings table markers"
    assert block.group(1).strip() == table().strip(), "run: python scripts/settings_table.py"
    for name in Settings.model_fields:
        assert f"`{name.upper()}`" in README


def test_readme_opens_with_the_two_commands_and_ci_calls_the_test_command() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = [ln.split("#")[0].strip() for ln in first_block.group(1).splitlines() if ln.strip()]
    assert commands == ["scripts/run.sh", "scripts/test.sh"]
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    for cmd in commands:
        assert (ROOT / cmd).stat().st_mode & 0o111, f"{cmd} must be executable"
