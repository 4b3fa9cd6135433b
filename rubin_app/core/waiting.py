"""Waiting for an event with a time limit, without losing a cancellation.

On Python 3.11, `asyncio.wait_for(event.wait(), t)` returns normally when the task is cancelled just as the
event is set: the cancellation is lost. A loop built on it (a flusher, a job poller) then survives the `cancel()`
of a shutdown, and whoever awaits it waits forever. `asyncio.timeout` counts cancellations and never loses one.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until `event` is set or `timeout` seconds pass (None: no limit); whether it is set."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass
    return event.is_set()


async def stop_task(task: asyncio.Task[object], *, tries: int = 5, each: float = 1.0) -> bool:
    """Cancel `task` and wait until it ends; whether it did. A cancel() it lost (a client library waiting with
    wait_for) is sent again, `tries` times `each` seconds apart: a stop is never held forever."""
    for _ in range(tries):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=each)
        if done:
            if not task.cancelled():
                task.exception()  # retrieved: a task that failed on its way out is not reported as never seen
            return True
    return False
