"""What a test that ran out of time was waiting for: the stacks of the pending asyncio tasks.

pytest-timeout (`timeout` in pyproject.toml) fails a test that runs too long and prints the other threads'
stacks; for an async test the main thread is only the event loop's select(), so this adds, to the failure's
report, where every unfinished task of the process was awaiting (a fixture's background task included), read
at the moment the time ran out.
"""

from __future__ import annotations

import asyncio
import io
import signal
import threading
from collections.abc import Generator
from types import FrameType
from typing import Any

import pytest

TIMEOUT_MARK = "Timeout (>"  # how pytest-timeout's failure message starts
AT_TIMEOUT = pytest.StashKey[str]()


def pending_tasks() -> list[asyncio.Task[Any]]:
    """Every unfinished task of every event loop in the process (Python 3.11 keeps them in one weak set)."""
    registry = getattr(asyncio.tasks, "_all_tasks", ())
    for _ in range(3):  # the set may change while it is copied (a finalizer on another thread)
        try:
            return [task for task in list(registry) if not task.done()]
        except RuntimeError:
            continue
    return []


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """Where a suspended task waits, outermost first: each coroutine it awaits, down to the innermost one (a
    task's own stack shows only its outermost frame), then what that one awaits (a future, a task)."""
    lines: list[str] = []
    awaited: Any = task.get_coro()
    for _ in range(60):
        frame = (
            getattr(awaited, "cr_frame", None)
            or getattr(awaited, "gi_frame", None)
            or getattr(awaited, "ag_frame", None)
        )
        if frame is None:
            if awaited is not None:
                lines.append(f"  awaiting {awaited!r}"[:400])
            break
        lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaited = next(
            (getattr(awaited, name) for name in ("cr_await", "gi_yieldfrom", "ag_await") if hasattr(awaited, name)),
            None,
        )
    return lines


def task_stacks(tasks: list[asyncio.Task[Any]]) -> str:
    out = io.StringIO()
    for task in tasks:
        state = "cancelling" if task.cancelling() else "pending"
        out.write(f"--- {task.get_name()} ({state}): {task.get_coro()!r}\n")
        out.write("\n".join(await_chain(task)) + "\n")
    return out.getvalue() or "no pending asyncio task\n"


@pytest.hookimpl(wrapper=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> Generator[None, object, object]:
    """Around pytest-timeout's signal timer: note the pending tasks first (its failure then unwinds them)."""
    result = yield
    fail = signal.getsignal(signal.SIGALRM)
    if settings.method == "signal" and callable(fail) and threading.current_thread() is threading.main_thread():

        def on_timeout(signum: int, frame: FrameType | None) -> None:
            __tracebackhide__ = True
            item.stash[AT_TIMEOUT] = task_stacks(pending_tasks())
            fail(signum, frame)

        signal.signal(signal.SIGALRM, on_timeout)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and TIMEOUT_MARK in str(report.longrepr):
        stacks = item.stash.get(AT_TIMEOUT, None) or task_stacks(pending_tasks())
        report.sections.append(("pending asyncio tasks at the timeout", stacks))
    return report
