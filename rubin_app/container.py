"""Serve a production build made ahead of time: what the container image runs (deploy/docker/Dockerfile).

`reflex run --env prod` compiles the app and builds the frontend at every start (bun, vite: tens of seconds and
~1 GB of build tools). The image builds once, with `reflex export --frontend-only --no-zip`, and starts with
`python -m rubin_app.container serve`: Reflex's production backend (granian, the same workers, lifespan and
migrations) with the built frontend mounted on the same port, nothing compiled; with one worker, in this one
process (rubin_app/serve_single.py). `check` tells whether a build
is there and which address it was made for.

scripts/run.sh uses the same path on a host: `serve --build` first makes the build, only when its inputs changed
(rubin_app/build_stamp.py), then starts from it; with `--bundled-engine` LOCALAI_URL may be empty (the script has
started the bundled llama.cpp engine itself).

The page reaches the websocket at the address the build was made for (FRONTEND_PORT / API_URL at build time;
behind HTTPS the port is dropped by the page itself): `serve` warns when the running settings differ.

With EMBEDDING_MODEL empty, `serve` also starts the bundled embedding server (rubin_app/embed_server.py, in the image:
numpy, no compile) on 127.0.0.1:EMBEDDING_PORT, as scripts/run.sh does.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rubin_app import build_stamp, serve_single

if TYPE_CHECKING:
    from rubin_app.config import Settings
    from rubin_app.embed_server import Process

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / ".web" / "build" / "client"
ENV_JSON = ROOT / ".web" / "env.json"


def get_settings() -> Settings:
    """The settings (imported here, so that `serve` imports them with the collector paused: see `main`)."""
    from rubin_app.config import get_settings as settings

    return settings()


def built_event_url() -> str:
    """The websocket address baked into the frontend build ('' when there is no build)."""
    try:
        return str(json.loads(ENV_JSON.read_text(encoding="utf-8")).get("EVENT", ""))
    except (OSError, ValueError):
        return ""


def address_mismatch(built: str, *, frontend_port: int, api_url: str) -> str | None:
    """Why the build's websocket address does not fit the running settings, or None when it fits."""
    want = (api_url.rstrip("/") or f"http://localhost:{frontend_port}").replace("http", "ws", 1) + "/_event"
    if built == want:
        return None
    return (
        f"the frontend was built for the websocket {built or '(none)'} but the settings say {want}: "
        "serve on the port the image was built for, or rebuild with --build-arg FRONTEND_PORT / API_URL"
    )


def baked_api_url(settings: Settings) -> str:
    """The backend address a build made with these settings carries: API_URL, or with TLS served by Rubin itself
    PUBLIC_URL's origin (what rxconfig.py sets); '' for the default (localhost on FRONTEND_PORT)."""
    if settings.api_url or not settings.tls_cert_file:
        return settings.api_url
    from rubin_app.services.net import origin_of

    return origin_of(settings.public_url)


def start_embedder(settings: Settings) -> Process | None:
    """Start the bundled embedding server when no EMBEDDING_MODEL is configured (and embeddings are on); its log in
    DATA_DIR/embed.log."""
    if not settings.embeddings_enabled or settings.embedding_model:
        return None
    from rubin_app.embed_server import start

    print(f"[rubin] starting the bundled embedding server on 127.0.0.1:{settings.embedding_port}", file=sys.stderr)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Not waited for: it loads its model on the first request (EMBEDDING_IDLE_SECONDS), and nothing embeds at start.
    log = settings.data_dir / "embed.log"
    return start(settings.embedding_port, log, wait=False, idle_seconds=settings.embedding_idle_seconds)


def build(*, force: bool = False) -> bool:
    """Make the production frontend unless the one on disk was made from the same sources and settings (and the
    app's missing byte code); True when it built. The websocket address baked in is API_URL, or localhost on
    FRONTEND_PORT (the page swaps in its own host name), as the container image does."""
    import compileall
    import subprocess

    settings = get_settings()
    # The app's byte code too (only what is missing or stale; written even with PYTHONDONTWRITEBYTECODE): without
    # it every start compiles ~300 modules again, about a second of CPU.
    for tree in ("rubin_app", "alembic"):  # as the image does (deploy/docker/Dockerfile)
        compileall.compile_dir(ROOT / tree, quiet=1, workers=1)
    compileall.compile_file(ROOT / "rxconfig.py", quiet=1)
    needed, _ = build_stamp.needs_build(settings)
    if not needed and not force:
        print("[rubin] the production build is up to date (no rebuild)", file=sys.stderr, flush=True)
        return False
    print("[rubin] building the production frontend (sources or settings changed)...", file=sys.stderr, flush=True)
    env = dict(os.environ)  # with TLS served by Rubin: PUBLIC_URL's origin (wss:// on its port), as `serve` expects
    env.setdefault("API_URL", baked_api_url(settings) or f"http://localhost:{settings.frontend_port}")
    started = time.monotonic()
    command = ["reflex", "export", "--frontend-only", "--no-zip", "--env", "prod", "--loglevel", "warning"]
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    if done.returncode != 0 or not (BUILD_DIR / "index.html").is_file():
        raise SystemExit(f"the frontend build failed (exit {done.returncode})")
    build_stamp.save(build_stamp.compute(settings))  # after the build: what it may have touched is in the stamp
    print(f"[rubin] built in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return True


def worker_count() -> int:
    """How many workers Reflex's production server would start: WORKERS (rxconfig.py passes it on as
    GRANIAN_WORKERS), else Reflex's default (1 without Redis, 2 x cores + 1 with it)."""
    from reflex.utils import processes

    return int(os.environ.get("GRANIAN_WORKERS") or processes.get_num_workers())


def serve(*, bundled_engine: bool = False) -> None:
    """Run Reflex's production backend with the prebuilt frontend mounted (no compile, no bun at start);
    `bundled_engine`: the caller started the bundled engine, so LOCALAI_URL may be empty (scripts/run.sh)."""
    if not (BUILD_DIR / "index.html").is_file():
        raise SystemExit(f"no frontend build in {BUILD_DIR}: run `python -m rubin_app.container build` first")
    settings = get_settings()
    if not settings.localai_url and not bundled_engine:
        raise SystemExit(
            "LOCALAI_URL is not set: the container has no bundled engine; point LOCALAI_URL at your LocalAI "
            "(or any OpenAI-compatible server), e.g. -e LOCALAI_URL=http://localai:8080"
        )
    problem = address_mismatch(built_event_url(), frontend_port=settings.frontend_port, api_url=baked_api_url(settings))
    if problem:
        print(f"[rubin] warning: {problem}", file=sys.stderr)
    embedders: list[Process] = []

    def start_embedding() -> None:  # a child process: it ends with the app
        embedder = start_embedder(settings)
        if embedder is not None:
            embedders.append(embedder)
            print(f"[rubin] embedding server started (pid {embedder.pid})", file=sys.stderr, flush=True)

    from reflex import constants
    from reflex.config import get_config
    from reflex.environment import environment
    from reflex.utils import exec as rx_exec

    environment.REFLEX_ENV_MODE.set(constants.Env.PROD)
    environment.REFLEX_SKIP_COMPILE.set(True)
    config = get_config()
    port = settings.frontend_port
    # One port for the page and the backend, passed on to the workers (what `reflex run --env prod` does).
    config._set_persistent(frontend_port=port, backend_port=port)  # type: ignore[no-untyped-call]
    level = config.loglevel.subprocess_level()  # type: ignore[no-untyped-call]
    workers = worker_count()
    print(f"[rubin] serving the prebuilt app on port {port} ({workers} worker(s))", file=sys.stderr, flush=True)
    if workers == 1:  # one process: no supervisor holding a second copy of the app (serve_single.py)
        environment.REFLEX_MOUNT_FRONTEND_COMPILED_APP.set(True)
        log_level = os.environ.get("GRANIAN_LOG_LEVEL", level.value)
        # The embedding server starts once the app is imported: not competing with the import for CPU.
        code = serve_single.run(config.backend_host, port, log_level, settings, on_loaded=start_embedding)
        for embedder in embedders:  # on a host (scripts/run.sh) it must not outlive the app
            embedder.terminate()
        serve_single.exit_now(code)
    try:
        start_embedding()
        gc.enable()  # before the supervisor forks its workers: they keep collecting
        rx_exec.run_backend_prod(config.backend_host, port, level, mount_frontend_compiled_app=True)
    finally:
        for embedder in embedders:
            embedder.terminate()


def main(argv: list[str]) -> int:
    """`serve [--build] [--bundled-engine]` (the image's command; --build: `build` first), `build [--force]` (only
    when the inputs changed) or `check` (is there a build, made for the address the settings say)."""
    command, flags = (argv[0] if argv else ""), set(argv[1:])
    if command == "serve" and flags <= {"--bundled-engine", "--build"}:
        # Importing the app makes ~300,000 objects; the cyclic collector would walk them again and again (~20% of
        # the start's CPU). Paused until the app is up, then they are frozen out of later collections.
        gc.disable()
        if "--build" in flags:  # in this process: one interpreter start less than `build` then `serve`
            build()
        serve(bundled_engine="--bundled-engine" in flags)
        return 0
    if command == "build" and flags <= {"--force"}:
        build(force="--force" in flags)
        return 0
    if command == "check":
        built, settings = built_event_url(), get_settings()
        print(f"build: {'yes' if (BUILD_DIR / 'index.html').is_file() else 'no'}; websocket: {built or '(none)'}")
        problem = address_mismatch(built, frontend_port=settings.frontend_port, api_url=settings.api_url)
        if problem:
            print(problem, file=sys.stderr)
        return 1 if problem or not built else 0
    usage = "serve [--build] [--bundled-engine] | build [--force] | check"
    print(f"usage: python -m rubin_app.container {usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
