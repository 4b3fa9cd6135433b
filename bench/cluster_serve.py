"""`reflex run --env prod` split in two, so a cluster of instances shares one production build.

    python -m bench.cluster_serve build          compile the app and build the frontend (.web/build), then exit
    python -m bench.cluster_serve serve --port P serve that build on one port (backend + frontend), never building

Reflex's prod run compiles and builds at every start, under a lock on `.web`: a restart would cost minutes on
two cores and rewrite the files other instances are serving. Both commands run Reflex's own `_run` (same
settings, same granian workers); `build` skips serving, `serve` skips the compile and the build.
"""

from __future__ import annotations

import argparse
from typing import Any


def _noop(*_args: Any, **_kwargs: Any) -> None:
    """Stands in for the step a mode leaves out."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["build", "serve"])
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)

    from reflex import reflex as cli
    from reflex.utils import build, exec
    from reflex_base import constants

    if args.mode == "build":
        exec.run_backend_prod = _noop  # type: ignore[assignment]  # compile + build only
        exec.notify_app_running = _noop  # type: ignore[assignment]
    else:
        cli._compile_app = _noop  # type: ignore[attr-defined]  # the build on disk is served as it is
        build.setup_frontend_prod = _noop  # type: ignore[assignment]
    cli._run(env=constants.Env.PROD, frontend_port=args.port, backend_port=args.port)


if __name__ == "__main__":
    main()
