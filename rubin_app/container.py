"""Serve a production build made ahead of time: what the container image runs (deploy/docker/Dockerfile).

`reflex run --env prod` compiles the app and builds the frontend at every start (bun, vite: tens of seconds and
~1 GB of build tools). The image builds once, with `reflex export --frontend-only --no-zip`, and starts with
`python -m rubin_app.container serve`: Reflex's production backend (granian, the same workers, lifespan and
migrations) with the built frontend mounted on the same port, nothing compiled. `check` tells whether a build
is there and which address it was made for.

The page reaches the websocket at the address the build was made for (FRONTEND_PORT / API_URL at build time;
behind HTTPS the port is dropped by the page itself): `serve` warns when the running settings differ.

With EMBEDDING_MODEL empty, `serve` first starts the bundled embedding server (rubin_app/embed_server.py, in the image:
numpy, no compile) on 127.0.0.1:EMBEDDING_PORT, as scripts/run.sh does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rubin_app.config import Settings, get_settings

if TYPE_CHECKING:
    from rubin_app.embed_server import Process

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / ".web" / "build" / "client"
ENV_JSON = ROOT / ".web" / "env.json"


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


def start_embedder(settings: Settings) -> Process | None:
    """Start the bundled embedding server when no EMBEDDING_MODEL is configured (and embeddings are on); its log in
    DATA_DIR/embed.log."""
    if not settings.embeddings_enabled or settings.embedding_model:
        return None
    from rubin_app.embed_server import start

    print(f"[rubin] starting the bundled embedding server on 127.0.0.1:{settings.embedding_port}", file=sys.stderr)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return start(settings.embedding_port, settings.data_dir / "embed.log")


def serve() -> None:
    """Run Reflex's production backend with the prebuilt frontend mounted (no compile, no bun at start)."""
    if not (BUILD_DIR / "index.html").is_file():
        raise SystemExit(f"no frontend build in {BUILD_DIR}: run `reflex export --frontend-only --no-zip` first")
    settings = get_settings()
    if not settings.localai_url:
        raise SystemExit(
            "LOCALAI_URL is not set: the container has no bundled engine; point LOCALAI_URL at your LocalAI "
            "(or any OpenAI-compatible server), e.g. -e LOCALAI_URL=http://localai:8080"
        )
    problem = address_mismatch(built_event_url(), frontend_port=settings.frontend_port, api_url=settings.api_url)
    if problem:
        print(f"[rubin] warning: {problem}", file=sys.stderr)
    embedder = start_embedder(settings)  # a child process: it ends with the container
    if embedder is not None:
        print(f"[rubin] embedding server ready (pid {embedder.pid})", file=sys.stderr, flush=True)
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
    print(f"[rubin] serving the prebuilt app on port {port}", file=sys.stderr, flush=True)
    rx_exec.run_backend_prod(config.backend_host, port, level, mount_frontend_compiled_app=True)


def main(argv: list[str]) -> int:
    """`serve` (the image's command) or `check` (is there a build, made for the address the settings say)."""
    command = argv[0] if argv else ""
    if command == "serve":
        serve()
        return 0
    if command == "check":
        built, settings = built_event_url(), get_settings()
        print(f"build: {'yes' if (BUILD_DIR / 'index.html').is_file() else 'no'}; websocket: {built or '(none)'}")
        problem = address_mismatch(built, frontend_port=settings.frontend_port, api_url=settings.api_url)
        if problem:
            print(problem, file=sys.stderr)
        return 1 if problem or not built else 0
    print("usage: python -m rubin_app.container serve|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
