"""Container image (issue #14): its size, how fast a container starts, and its idle memory.

One run, the LocalAI stand-in on the host, podman (settings of tests/deploy/podman.py):
  (a) image sizes: the final image vs the builder stage (`--target builder`) and the Debian base image;
  (b) cold start: `podman run` -> first 200 on /api/health and on / (a fresh volume each time: migrations run),
      and a restart on the existing volume; baselines measured in the same run on the host:
      `reflex run --env prod` (what scripts/run.sh does: the frontend is built at every start) and the same
      prebuilt serve the image runs (`python -m rubin_app.container serve`) without a container;
  (c) idle memory: RSS of every process of the container vs the host's `reflex run --env prod` process tree.
Usage: scripts/bench.sh container [--samples 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, isolated_copy, print_table, settings_env, stop_app, tree_rss_mb  # noqa: E402
from tests.deploy import podman  # noqa: E402
from tests.fakes.localai_standin import StandIn, StandInConfig  # noqa: E402

RESULTS = ROOT / "bench" / "results"
NAME, VOLUME = "rubin-bench", "rubin-bench-data"


def _first_200(base: str, alive: Callable[[], bool], t0: float, limit: float = 300.0) -> tuple[float, float]:
    """Seconds from `t0` (monotonic) until /api/health and / first answer 200 (polled every 50 ms)."""
    health, page = 0.0, 0.0
    while time.monotonic() - t0 < limit and not (health and page):
        if not alive():
            raise RuntimeError("the app exited while starting")
        for path in ("/api/health", "/"):
            if (health if path == "/api/health" else page) == 0.0:
                try:
                    if httpx.get(base + path, timeout=2).status_code == 200:
                        elapsed = time.monotonic() - t0
                        health, page = (elapsed, page) if path == "/api/health" else (health, elapsed)
                except httpx.HTTPError:
                    pass
        time.sleep(0.05)
    if not (health and page):
        raise TimeoutError(f"no 200 within {limit} s at {base}")
    return health, page


def _container_start(image: str, port: int, standin: StandIn, fresh: bool) -> tuple[float, float, float]:
    """(health s, page s, idle RSS MB) of one container start, on a fresh volume or the existing one."""
    podman.remove(NAME, VOLUME if fresh else None)
    env = {"LOCALAI_URL": standin.url, "LOG_LEVEL": "WARNING"}
    t0 = time.monotonic()
    podman.run_container(NAME, env, VOLUME, image=image)
    health, page = _first_200(f"http://127.0.0.1:{port}", lambda: True, t0)
    time.sleep(5)  # idle: startup work (migrations, first requests) done
    pid = int(podman.podman("inspect", "--format", "{{.State.Pid}}", NAME).strip())
    return health, page, tree_rss_mb(pid)


def _host_start(copy: Path, env: dict[str, str], command: list[str], log: Path) -> tuple[float, float, float]:
    """(health s, page s, idle RSS MB) of one start on the host in the isolated copy."""
    with log.open("wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            command, cwd=copy, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            health, page = _first_200(f"http://127.0.0.1:{env['FRONTEND_PORT']}", lambda: proc.poll() is None, t0)
            time.sleep(5)
            return health, page, tree_rss_mb(proc.pid)
        finally:
            stop_app(proc)


def _median(rows: list[tuple[float, float, float]], i: int) -> float:
    return statistics.median(r[i] for r in rows)


def main() -> None:
    """Build (cached), measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3, help="starts of each kind (medians are shown)")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    podman.ensure_base_image()
    build_s = podman.build_image(port, RESULTS / "container-build.log", tag="localhost/rubin:bench")
    podman.build_image(port, RESULTS / "container-builder.log", tag="localhost/rubin:bench-builder", target="builder")
    sizes = {tag: podman.image_size_mb(tag) for tag in ("localhost/rubin:bench", "localhost/rubin:bench-builder")}
    base_mb = podman.image_size_mb(podman.BASE_IMAGE)
    standin = StandIn(StandInConfig()).start()
    tmp = Path(tempfile.mkdtemp(prefix="rubin-ctr-bench-"))
    try:
        image = "localhost/rubin:bench"
        cold = [_container_start(image, port, standin, fresh=True) for _ in range(args.samples)]
        warm = [_container_start(image, port, standin, fresh=False) for _ in range(args.samples)]
        podman.remove(NAME, VOLUME)
        copy = isolated_copy(tmp / "app")
        env = settings_env(standin.url, tmp / "host.db", tmp / "data", port, LOG_LEVEL="WARNING")
        run = ["reflex", "run", "--env", "prod", "--frontend-port", str(port), "--backend-port", str(port)]
        host = [_host_start(copy, env, run, RESULTS / "container-host.log") for _ in range(args.samples)]
        serve = [sys.executable, "-m", "rubin_app.container", "serve"]
        prebuilt = [_host_start(copy, env, serve, RESULTS / "container-host-serve.log") for _ in range(args.samples)]
    finally:
        podman.remove(NAME, VOLUME)
        standin.stop()
    _report(sizes, base_mb, build_s, cold, warm, host, prebuilt, args.samples)


def _report(
    sizes: dict[str, float], base_mb: float, build_s: float, cold: list[tuple[float, float, float]],
    warm: list[tuple[float, float, float]], host: list[tuple[float, float, float]],
    prebuilt: list[tuple[float, float, float]], samples: int,
) -> None:  # fmt: skip
    final, builder = sizes["localhost/rubin:bench"], sizes["localhost/rubin:bench-builder"]
    h = _median(host, 0)
    rows = [
        ("image size, final (MB)", f"{final:.0f}", f"builder {builder:.0f}", f"{final / builder:.2f}x", "small"),
        ("  of which the Debian base (MB)", f"{base_mb:.0f}", "-", f"app {final - base_mb:.0f} MB", ""),
        ("image build, layers cached (s)", f"{build_s:.1f}", "-", "-", ""),
        ("start -> /api/health 200, new volume (s)", f"{_median(cold, 0):.1f}", f"host run.sh {h:.1f}",
         f"{_median(cold, 0) / h:.2f}x", "seconds"),
        ("start -> / 200, new volume (s)", f"{_median(cold, 1):.1f}", f"host run.sh {_median(host, 1):.1f}",
         f"{_median(cold, 1) / _median(host, 1):.2f}x", "seconds"),
        ("restart -> /api/health 200, same volume (s)", f"{_median(warm, 0):.1f}",
         f"host prebuilt {_median(prebuilt, 0):.1f}", f"{_median(warm, 0) / _median(prebuilt, 0):.2f}x", ""),
        ("idle memory, all processes (MB RSS)", f"{_median(cold, 2):.0f}", f"host run.sh {_median(host, 2):.0f}",
         f"{_median(cold, 2) / _median(host, 2):.2f}x", ""),
    ]  # fmt: skip
    print_table(f"Container image: size, cold start, idle memory (medians of {samples})", rows)


if __name__ == "__main__":
    main()
