"""What a test that ran out of time was waiting for: the stacks of the pending asyncio tasks.

pytest-timeout (`timeout` in pyproject.toml) fails a test that runs too long and prints the other threads'
stacks; for an async test the main thread is only the event loop's select(), so this adds, to the failure's
report, where every unfinished task of the process was awaiting (a fixture's background task included).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Generator

import pytest

TIMEOUT_MARK = "Timeout (>"  # how pytest-timeout's failure message starts


def pending_tasks() -> list[asyncio.Task[object]]:
    """Every unfinished task of every event loop in the process (Python 3.11 keeps them in one weak set)."""
    registry = getattr(asyncio.tasks, "_all_tasks", ())
    for _ in range(3):  # the set may change while it is copied (a finalizer on another thread)
        try:
            return [task for task in list(registry) if not task.done()]
        except RuntimeError:
            continue
    return []


def task_stacks(tasks: list[asyncio.Task[object]]) -> str:
    out = io.StringIO()
    for task in tasks:
        out.write(f"--- {task.get_name()}: {task.get_coro()!r}\n")
        task.print_stack(limit=25, file=out)
    return out.getvalue() or "no pending asyncio task\n"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and TIMEOUT_MARK in str(report.longrepr):
        report.sections.append(("pending asyncio tasks at the timeout", task_stacks(pending_tasks())))
    return report
