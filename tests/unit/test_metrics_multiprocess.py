"""The metrics directory of an instance (rubin_app/observability/multiprocess.py), with real processes.

A worker that died keeps its counted answers in the totals, but its live gauges (answers streaming, open
websockets) leave them at the next scrape; a new instance starts from an empty directory of its own and removes
the directories of instances that are gone; a worker process (a multiprocessing child) keeps its parent's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

COUNT_AND_DIE = """
import os
from rubin_app.observability import metrics
metrics.ANSWERS_STARTED.labels("ui").inc()
metrics.ANSWERS_STREAMING.inc()
metrics.WEBSOCKETS.inc()
os._exit(9)  # killed mid-answer: nothing decremented
"""

SCRAPE = """
import json
from prometheus_client.parser import text_string_to_metric_families
from rubin_app.observability import metrics
metrics.ANSWERS_STREAMING.inc()  # this worker streams one answer now
body, _ = metrics.render()
print(json.dumps({s.name + json.dumps(s.labels, sort_keys=True): s.value
                  for f in text_string_to_metric_families(body.decode()) for s in f.samples}))
"""


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_a_dead_workers_answers_stay_counted_and_its_live_gauges_leave(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        assert _python(COUNT_AND_DIE, env).returncode == 9
    scraped = _python(SCRAPE, env)
    assert scraped.returncode == 0, scraped.stderr
    figures = json.loads(scraped.stdout)
    assert figures['rubin_answers_started_total{"source": "ui"}'] == 2  # both dead workers' answers
    assert figures["rubin_answers_streaming{}"] == 1  # only the scraping worker's own answer
    assert figures["rubin_websocket_connections{}"] == 0


PREPARE = """
import json, multiprocessing, os, sys
from pathlib import Path
from rubin_app.observability import multiprocess

def child(queue):
    queue.put(str(multiprocess.prepare(Path(sys.argv[1]))))

if __name__ == "__main__":
    mine = multiprocess.prepare(Path(sys.argv[1]))
    queue = multiprocessing.get_context("spawn").Queue()
    proc = multiprocessing.get_context("spawn").Process(target=child, args=(queue,))
    proc.start()
    print(json.dumps({"mine": str(mine), "pid": os.getpid(), "worker": queue.get(timeout=30),
                      "files": sorted(p.name for p in mine.iterdir())}))
    proc.join()
"""


def test_each_instance_starts_empty_removes_gone_instances_and_its_workers_share_its_directory(tmp_path: Path) -> None:
    base = tmp_path / "rubin-metrics"
    gone = base / "999999999"  # no such process
    gone.mkdir(parents=True)
    (gone / "counter_999999999.db").write_bytes(b"old")
    script = tmp_path / "prepare.py"
    script.write_text(PREPARE)
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}  # as a shell starts it
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, str(script), str(base)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mine"] == str(base / str(result["pid"]))
    assert result["worker"] == result["mine"]  # the worker kept the instance's directory
    assert result["files"] == []
    assert not gone.exists()
    # Started from an instance's environment (as a test or a shell would), a new instance still makes its own.
    env["PROMETHEUS_MULTIPROC_DIR"] = result["mine"]
    again = subprocess.run([sys.executable, str(script), str(base)], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["mine"] != result["mine"]
