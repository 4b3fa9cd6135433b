"""Start, idle memory and first load (issue #16): scripts/run.sh now vs the code before #16, in one run.

Two copies of the sources side by side (sharing .venv and .tools), each with its own database and port, the
LocalAI stand-in on loopback:
  - "now": this checkout's sources, started with `scripts/run.sh` (the build is made once before the samples,
    then every start finds it up to date and serves it);
  - "before": the sources of `--baseline` (default 9b00f83, main before #16), started as its scripts/run.sh did:
    `reflex run --env prod` (compile and build at every start), plus its bundled embedding server, which loaded
    its model before it listened.
Measured, interleaved, `--samples` times each: seconds from the start command to the first 200 on `/` (and the CPU
seconds all its processes used by then, which the machine's load moves less than the wall time); then a
signed-in page load in Chromium (cold cache: bytes on the wire of the whole page, and of its JS + CSS; a second
load with the cache warm) and, 10 s later, the PSS of every process of the app (psutil memory_full_info).
Usage: scripts/bench.sh startup [--samples 3] [--baseline REF]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import httpx
import psutil
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    CHROMIUM_ARGS,
    free_port,
    print_table,
    session_cookie,
    settings_env,
    sign_in,
    stop_app,
    tree_measure,
)
from tests.fakes.localai_standin import StandIn, StandInConfig  # noqa: E402

RESULTS = ROOT / "bench" / "results"
IDLE_SECONDS = 10.0


def copy_sources(ref: str | None, dest: Path) -> Path:
    """The sources of git `ref` (None: this working tree) in `dest`, with .venv and .tools shared."""
    if ref is None:
        skip = {".web", ".git", "data", ".venv", ".tools", ".states", "test-artifacts", "__pycache__", "node_modules"}
        import shutil

        shutil.copytree(ROOT, dest, ignore=lambda _d, names: [n for n in names if n in skip])
    else:
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
        dest.mkdir(parents=True)
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
    for name in (".venv", ".tools"):
        (dest / name).symlink_to(ROOT / name)
    return dest


def first_200(base: str, proc: subprocess.Popen[bytes], t0: float, limit: float = 300.0) -> float:
    """Seconds from `t0` until `/` answers 200 (polled every 50 ms)."""
    while time.monotonic() - t0 < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited while starting (exit {proc.returncode})")
        try:
            if httpx.get(base + "/", timeout=2).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no 200 within {limit} s at {base}")


def tree_pss(pid: int) -> list[tuple[str, float]]:
    """(command, PSS MB) of a process and its descendants."""
    return tree_measure(pid, lambda p: (" ".join(p.cmdline())[:60], p.memory_full_info().pss / 1e6))


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process and its descendants used, ended children included: a start's cost
    that does not move with the machine's load the way its wall time does."""

    def cpu(proc: psutil.Process) -> float:
        t = proc.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    return sum(tree_measure(pid, cpu))


def page_bytes(base: str) -> tuple[int, int, int]:
    """(all bytes, JS + CSS bytes) of a cold signed-in load of the chat page, and all bytes of a warm reload."""
    token = sign_in(base)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
        context.add_cookies([session_cookie(base, token)])  # type: ignore[list-item]
        page = context.new_page()
        sizes = "performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))"
        script = f"""() => {sizes}.map(e => [new URL(e.name).pathname, e.transferSize])"""

        def load() -> list[tuple[str, int]]:
            page.goto(base + "/")
            page.get_by_test_id("composer").wait_for(timeout=60_000)
            page.wait_for_load_state("networkidle")
            return [(str(p), int(n)) for p, n in page.evaluate(script)]

        cold = load()
        warm = load()
        browser.close()
    js_css = sum(n for p, n in cold if p.endswith((".js", ".mjs", ".css")))
    return sum(n for _, n in cold), js_css, sum(n for _, n in warm)


def one_start(copy: Path, env: dict[str, str], command: list[str], log: Path) -> dict[str, object]:
    """Start, time to the first 200, page bytes, idle PSS; stopped again."""
    base = f"http://127.0.0.1:{env['FRONTEND_PORT']}"
    with log.open("ab") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            command, cwd=copy, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            seconds = first_200(base, proc, t0)
            cpu = tree_cpu(proc.pid)
            cold, js_css, warm = page_bytes(base)
            time.sleep(IDLE_SECONDS)
            pss = tree_pss(proc.pid)
            return {"start": seconds, "cpu": cpu, "cold": cold, "js_css": js_css, "warm": warm, "pss": pss}
        finally:
            stop_app(proc)


def old_embedder(port: int, log: Path) -> subprocess.Popen[bytes]:
    """The baseline's bundled embedding server (it loaded the model before listening), as its run.sh started it."""
    from rubin_app.engine import wait_ready

    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-c", OLD_EMBEDDER, str(port)], stdout=out, stderr=subprocess.STDOUT)
    wait_ready(f"http://127.0.0.1:{port}", timeout=120, proc=proc)
    return proc


OLD_EMBEDDER = """import sys; from rubin_app.embed_server import EmbedServer, LazyModel
m = LazyModel(idle_seconds=0)
with m.use(): pass
EmbedServer(("127.0.0.1", int(sys.argv[1])), m).serve_forever()"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3, help="starts of each kind (medians are shown)")
    parser.add_argument("--baseline", default="9b00f83", help="git ref of the 'before' sources")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="rubin-startup-bench-"))
    standin = StandIn(StandInConfig()).start()
    now_port, old_port, old_embed_port = free_port(), free_port(), free_port()
    now_env = settings_env(standin.url, tmp / "now.db", tmp / "now-data", now_port, LOG_LEVEL="WARNING",
                           EMBEDDING_PORT=str(free_port()))  # fmt: skip
    old_env = settings_env(standin.url, tmp / "old.db", tmp / "old-data", old_port, LOG_LEVEL="WARNING",
                           EMBEDDING_PORT=str(old_embed_port))  # fmt: skip
    for env in (now_env, old_env):  # both write their byte code at the first start, as on a user's machine
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    now_copy = copy_sources(None, tmp / "now")
    old_copy = copy_sources(args.baseline, tmp / "old")
    build = subprocess.run([sys.executable, "-m", "rubin_app.container", "build"], cwd=now_copy, env=now_env)
    if build.returncode:
        raise SystemExit("the build failed")
    run_sh = ["bash", "scripts/run.sh"]
    reflex_run = ["reflex", "run", "--env", "prod", "--frontend-port", str(old_port), "--backend-port", str(old_port)]
    now: list[dict[str, object]] = []
    old: list[dict[str, object]] = []
    try:
        for _ in range(args.samples):
            now.append(one_start(now_copy, now_env, run_sh, RESULTS / "startup-now.log"))
            embedder = old_embedder(old_embed_port, RESULTS / "startup-old-embed.log")
            try:
                sample = one_start(old_copy, old_env, reflex_run, RESULTS / "startup-old.log")
                sample["pss"] = [*sample["pss"], *tree_pss(embedder.pid)]  # type: ignore[list-item]
                old.append(sample)
            finally:
                embedder.terminate()
                embedder.wait(10)
    finally:
        standin.stop()
    report(now, old, args)


def med(samples: list[dict[str, object]], key: str) -> float:
    if key == "pss":
        return statistics.median(sum(mb for _, mb in s["pss"]) for s in samples)  # type: ignore[attr-defined]
    return statistics.median(float(s[key]) for s in samples)  # type: ignore[arg-type]


def report(now: list[dict[str, object]], old: list[dict[str, object]], args: argparse.Namespace) -> None:
    load = os.getloadavg()[0]
    rows = [
        ("start -> / 200 (s)", f"{med(now, 'start'):.1f}", f"{med(old, 'start'):.1f}",
         f"{med(now, 'start') / med(old, 'start'):.2f}x", "<= 3 s"),
        ("  CPU time of the start, all processes (s)", f"{med(now, 'cpu'):.1f}", f"{med(old, 'cpu'):.1f}",
         f"{med(now, 'cpu') / med(old, 'cpu'):.2f}x", "-"),
        ("first load, signed-in chat page, all bytes (kB)", f"{med(now, 'cold') / 1000:.0f}",
         f"{med(old, 'cold') / 1000:.0f}", f"{med(now, 'cold') / med(old, 'cold'):.2f}x", "-"),
        ("  of which JS + CSS (kB)", f"{med(now, 'js_css') / 1000:.0f}", f"{med(old, 'js_css') / 1000:.0f}",
         f"{med(now, 'js_css') / med(old, 'js_css'):.2f}x", "<= 300 kB"),
        ("second load, warm cache, all bytes (kB)", f"{med(now, 'warm') / 1000:.0f}",
         f"{med(old, 'warm') / 1000:.0f}", f"{med(now, 'warm') / med(old, 'warm'):.2f}x", "-"),
        (f"idle PSS, all processes, {IDLE_SECONDS:.0f} s after a page load (MB)", f"{med(now, 'pss'):.0f}",
         f"{med(old, 'pss'):.0f}", f"{med(now, 'pss') / med(old, 'pss'):.2f}x", "<= 150 MB"),
    ]  # fmt: skip
    for label, samples in (("now", now), ("before", old)):
        for command, mb in samples[-1]["pss"]:  # type: ignore[attr-defined]
            rows.append((f"  PSS {label}: {command}", f"{mb:.0f}" if label == "now" else "-",
                         f"{mb:.0f}" if label == "before" else "-", "", ""))  # fmt: skip
    title = (f"Start, first load, idle memory: scripts/run.sh now vs {args.baseline} (medians of {args.samples}; "
             f"load average {load:.1f} on {os.cpu_count()} cores)")  # fmt: skip
    print_table(title, rows)


if __name__ == "__main__":
    main()
