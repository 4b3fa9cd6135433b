"""A test that hangs fails on its time limit and says what it was waiting for (tests/hang_report.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HANGING_TEST = """
import asyncio


async def wait_for_an_answer_that_never_comes() -> None:
    await asyncio.Event().wait()


async def test_hangs() -> None:
    helper = asyncio.create_task(wait_for_an_answer_that_never_comes(), name="the-helper")
    await helper
"""


def test_a_hanging_async_test_fails_on_its_limit_with_the_stacks_of_its_tasks(tmp_path: Path) -> None:
    (tmp_path / "test_hanging.py").write_text(HANGING_TEST)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "test_hanging.py", "-p", "tests.hang_report", "-p", "no:cacheprovider",
         "--timeout=2", "-o", "asyncio_mode=auto", "--rootdir", str(tmp_path)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 1, out  # failed, and the run went on to its end
    assert "Timeout (>2.0s) from pytest-timeout" in out
    assert "pending asyncio tasks at the timeout" in out
    assert "the-helper" in out and "wait_for_an_answer_that_never_comes" in out
    assert "1 failed" in out
