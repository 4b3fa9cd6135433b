"""One metrics directory per instance, shared by its worker processes (prometheus-client's multiprocess mode).

Several granian workers serve one port, and a scrape reaches one of them: each worker writes its figures to
memory-mapped files in `PROMETHEUS_MULTIPROC_DIR`, and whichever worker answers `/metrics` adds up every
worker's files. `prepare()` runs when rxconfig.py is loaded: in the process that starts the workers (before
any worker exists and before prometheus-client is imported) it makes a fresh directory, which every worker
inherits through its environment (forked or spawned by multiprocessing). A process that is not a
multiprocessing child always makes its own, so two instances started by one shell or test never share one.
This module must not import prometheus-client: the variable has to be set first.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus-client itself when it is imported


def alive(pid: int) -> bool:
    """Whether a process with this id exists (in this process's namespace)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare(base: Path | None = None) -> Path:
    """The instance's metrics directory, made empty and exported to the workers (a worker keeps its parent's).

    The directory is `<temp dir>/rubin-metrics/<pid of this process>`, emptied first (a container restarted in
    the same pod has the same pid and the same /tmp); sibling directories of processes that are gone are removed.
    """
    if multiprocessing.parent_process() is not None and os.environ.get(ENV):
        return Path(os.environ[ENV])  # a worker of this instance
    root = base or Path(tempfile.gettempdir()) / "rubin-metrics"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.name.isdigit() and int(old.name) != os.getpid() and not alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    mine = root / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir(mode=0o700)
    os.environ[ENV] = str(mine)
    return mine


def reap_dead_workers(directory: str) -> list[int]:
    """Process ids of workers that died, whose live gauges (answers streaming, open websockets) are dropped."""
    from prometheus_client import multiprocess  # imported late: see the module's docstring

    dead: set[int] = set()
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(directory):
            if name.startswith("gauge_live") and name.endswith(".db"):
                owner = name.removesuffix(".db").rpartition("_")[2]
                if owner.isdigit() and not alive(int(owner)):
                    dead.add(int(owner))
    for pid in dead:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    return sorted(dead)
