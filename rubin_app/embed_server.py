"""The bundled embedding server: all-MiniLM-L6-v2 (rubin_app/embed_model.py) behind an OpenAI-compatible API.

Used when EMBEDDING_MODEL is empty. `python -m rubin_app.embed_server` serves on 127.0.0.1:EMBEDDING_PORT:
POST /v1/embeddings (OpenAI-shaped, model "rubin-embed"), GET /v1/models, GET /health. scripts/run.sh, the
container and the real-model test fixtures start it (`start()` below).

The model (and numpy) is loaded at the first embeddings request, not at start, and freed again after
EMBEDDING_IDLE_SECONDS without one (0: kept once loaded): an instance nobody uploads documents to keeps a ~25 MB
process instead of ~240 MB (docs/performance.md). /health says whether it is loaded.

numpy's BLAS runs on one thread here unless OPENBLAS_NUM_THREADS says otherwise: on a machine whose cores are busy
(the chat engine, the app) its worker threads spin against each other, ~10x slower than one thread
(docs/embeddings.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported

import argparse
import base64
import contextlib
import ctypes
import gc
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from rubin_app.embed_model import MiniLM

Process = subprocess.Popen[bytes]
MODEL_ID = "rubin-embed"
ALIASES = (MODEL_ID, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
MAX_INPUTS = 2048  # OpenAI's limit of inputs per request
MAX_INPUT_CHARS = 100_000  # a longer text is refused (it would be truncated to MAX_TOKENS word pieces anyway)
MAX_TOKENS = 256  # word pieces kept per text (embed_model.MAX_TOKENS; not imported: it would load numpy)
DIMENSION = 384  # embed_model.DIMENSION


def _release_memory() -> None:
    """Give freed heap pages back to the OS (glibc keeps them otherwise); a no-op elsewhere."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class LazyModel:
    """The model, loaded on first use and freed after `idle_seconds` without a request (0: never freed)."""

    def __init__(self, *, max_tokens: int = MAX_TOKENS, idle_seconds: float = 0.0) -> None:
        self.max_tokens = max_tokens
        self.idle_seconds = idle_seconds
        self._model: MiniLM | None = None
        self._lock = threading.Lock()
        self._busy = 0
        self._last_used = time.monotonic()
        self.loads = 0

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory now."""
        return self._model is not None

    @contextlib.contextmanager
    def use(self) -> Iterator[MiniLM]:
        """The loaded model for one request (loaded here when it is not); never freed while in use."""
        with self._lock:
            self._busy += 1
            if self._model is None:
                from rubin_app.embed_model import MiniLM

                self._model = MiniLM(max_tokens=self.max_tokens)
                self.loads += 1
            model = self._model
        try:
            yield model
        finally:
            with self._lock:
                self._busy -= 1
                self._last_used = time.monotonic()

    def free_if_idle(self, now: float | None = None) -> bool:
        """Free the weights when unused for `idle_seconds`; True when it freed them."""
        with self._lock:
            idle = (now if now is not None else time.monotonic()) - self._last_used
            if self._model is None or self._busy or not self.idle_seconds or idle < self.idle_seconds:
                return False
            self._model = None
        _release_memory()
        return True


Reply = tuple[int, dict[str, Any]]


def _error(status: int, message: str, param: str | None = None) -> Reply:
    """An OpenAI-shaped error."""
    return status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


def _inputs(body: Any) -> list[str] | str:
    """The texts of a request, or an error message."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return "input: a text or a non-empty list of texts is required (token arrays are not supported)"
    if len(texts) > MAX_INPUTS:
        return f"input: at most {MAX_INPUTS} texts per request"
    if any(len(t) > MAX_INPUT_CHARS for t in texts):
        return f"input: a text is longer than {MAX_INPUT_CHARS} characters"
    return texts


def embeddings(model: LazyModel, raw: bytes, *, batch_size: int = 32) -> Reply:
    """POST /v1/embeddings: (status, OpenAI-shaped body)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return _error(400, "the body is not JSON")
    texts = _inputs(body)
    if isinstance(texts, str):
        return _error(400, texts, "input")
    name = body.get("model") or MODEL_ID
    if name not in ALIASES:
        return _error(404, f"model '{name}' not found (this server has {MODEL_ID})", "model")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        return _error(400, "encoding_format: 'float' or 'base64'", "encoding_format")
    with model.use() as loaded:
        vectors, tokens = loaded.encode(texts, batch_size=batch_size), sum(loaded.count_tokens(texts))
    data = [{"object": "embedding", "index": i, "embedding": _encoded(v, fmt)} for i, v in enumerate(vectors)]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return 200, {"object": "list", "data": data, "model": MODEL_ID, "usage": usage}


def get(model: LazyModel, path: str) -> Reply:
    """GET /v1/models and /health."""
    if path == "/v1/models":
        card = {"id": MODEL_ID, "object": "model", "owned_by": "rubin", "dimension": DIMENSION}
        return 200, {"object": "list", "data": [card]}
    if path == "/health":
        return 200, {"status": "ok", "model": MODEL_ID, "dimension": DIMENSION, "loaded": model.loaded}
    return 404, {"detail": "Not Found"}


class EmbedServer(ThreadingHTTPServer):
    """The HTTP server (standard library only: ~10 MB while idle, against ~30 MB with an ASGI stack)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], model: LazyModel, *, batch_size: int = 32) -> None:
        super().__init__(address, _Handler)
        self.model, self.batch_size = model, batch_size


class _Handler(BaseHTTPRequestHandler):
    server: EmbedServer
    protocol_version = "HTTP/1.1"

    def _reply(self, reply: Reply) -> None:
        status, body = reply
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._reply(get(self.server.model, self.path.split("?", 1)[0]))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?", 1)[0] not in ("/v1/embeddings", "/embeddings"):
            self._reply((404, {"detail": "Not Found"}))
            return
        self._reply(embeddings(self.server.model, raw, batch_size=self.server.batch_size))

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no request lines in the log (they would carry nothing useful)."""


def _free_when_idle(model: LazyModel) -> None:
    """A daemon thread: check a few times per idle period whether the model may be freed."""
    while True:
        time.sleep(max(0.2, min(model.idle_seconds / 4, 10.0)))
        if model.free_if_idle():
            print("[embed] model freed after the idle time; loaded again on the next request", flush=True)


def _encoded(vector: np.ndarray[Any, Any], fmt: str) -> list[float] | str:
    """A vector as floats, or as base64 of little-endian float32 (what OpenAI's SDKs ask for by default)."""
    if fmt == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [round(float(x), 7) for x in vector]


def command(port: int, *, max_tokens: int = MAX_TOKENS, idle_seconds: float | None = None) -> list[str]:
    """The command line that serves the bundled model on a loopback port (idle time: EMBEDDING_IDLE_SECONDS)."""
    line = [sys.executable, "-m", "rubin_app.embed_server", "--port", str(port), "--max-tokens", str(max_tokens)]
    return line + (["--idle-seconds", str(idle_seconds)] if idle_seconds is not None else [])


def _end_with_parent() -> None:
    """In the child before it runs (Linux): SIGTERM when the process that started it dies, even by kill -9."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM


def start(
    port: int,
    log_file: Path | None = None,
    *,
    timeout: float = 120.0,
    wait: bool = True,
    idle_seconds: float | None = None,
) -> Process:
    """Start the server in the background; with `wait`, return once it answers (it listens before the model is
    loaded, so that is about a second)."""
    from rubin_app.engine import wait_ready

    line = command(port, idle_seconds=idle_seconds)
    if log_file:
        with open(log_file, "ab") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(line, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_end_with_parent)
    else:
        proc = subprocess.Popen(line, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, preexec_fn=_end_with_parent)
    if not wait:
        return proc
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=timeout, proc=proc)
    except BaseException:
        proc.kill()
        raise
    return proc


def main(argv: list[str] | None = None) -> None:
    """CLI: serve the model in the foreground (loaded at the first request)."""
    parser = argparse.ArgumentParser(prog="python -m rubin_app.embed_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: EMBEDDING_PORT")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="word pieces kept per text")
    parser.add_argument("--batch", type=int, default=32, help="most texts per forward pass")
    parser.add_argument("--idle-seconds", type=float, default=None, help="default: EMBEDDING_IDLE_SECONDS")
    args = parser.parse_args(argv)
    port, idle = args.port, args.idle_seconds
    if port is None or idle is None:  # the settings only when needed: pydantic would be ~6 MB of an idle process
        from rubin_app.config import get_settings

        settings = get_settings()
        port = port or settings.embedding_port
        idle = settings.embedding_idle_seconds if idle is None else idle
    model = LazyModel(max_tokens=args.max_tokens, idle_seconds=max(0.0, idle))
    server = EmbedServer((args.host, port), model, batch_size=args.batch)
    if model.idle_seconds:
        threading.Thread(target=_free_when_idle, args=(model,), daemon=True, name="free-when-idle").start()
    print(f"[embed] serving {MODEL_ID} (all-MiniLM-L6-v2, {DIMENSION} dims) on {args.host}:{port}", flush=True)
    with server:
        server.serve_forever()


if __name__ == "__main__":
    main()
