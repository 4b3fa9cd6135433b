"""Browser launch settings for the real-model test (Debian Chromium, never a downloaded browser)."""

from __future__ import annotations

import pytest

from bench.harness import CHROMIUM_ARGS


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Use /usr/bin/chromium with the flags this machine needs."""
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS}
