"""The bundled embedding server: all-MiniLM-L6-v2 (rubin_app/embed_model.py) behind an OpenAI-compatible API.

Used when EMBEDDING_MODEL is empty. `python -m rubin_app.embed_server` loads the model, then serves on
127.0.0.1:EMBEDDING_PORT: POST /v1/embeddings (OpenAI-shaped, model "rubin-embed"), GET /v1/models, GET /health.
scripts/run.sh, the container and the real-model test fixtures start it (`start()` below).

numpy's BLAS runs on one thread here unless OPENBLAS_NUM_THREADS says otherwise: on a machine whose cores are busy
(the chat engine, the app) its worker threads spin against each other, ~10x slower than one thread
(docs/embeddings.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported

import argparse
import asyncio
import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rubin_app.embed_model import MAX_TOKENS, MiniLM

Process = subprocess.Popen[bytes]
MODEL_ID = "rubin-embed"
ALIASES = (MODEL_ID, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
MAX_INPUTS = 2048  # OpenAI's limit of inputs per request
MAX_INPUT_CHARS = 100_000  # a longer text is refused (it would be truncated to MAX_TOKENS word pieces anyway)


def _error(status: int, message: str, param: str | None = None) -> JSONResponse:
    """An OpenAI-shaped error."""
    body = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return JSONResponse({"error": body}, status_code=status)


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


def create_app(model: MiniLM, *, batch_size: int = 32) -> Starlette:
    """The ASGI app serving `model`."""

    async def embeddings(request: Request) -> Response:
        try:
            body = await request.json()
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
        vectors = await asyncio.to_thread(model.encode, texts, batch_size=batch_size)
        tokens = sum(await asyncio.to_thread(model.count_tokens, texts))
        data = [{"object": "embedding", "index": i, "embedding": _encoded(v, fmt)} for i, v in enumerate(vectors)]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "data": data, "model": MODEL_ID, "usage": usage})

    async def models(_: Request) -> Response:
        card = {"id": MODEL_ID, "object": "model", "owned_by": "rubin", "dimension": model.dimension}
        return JSONResponse({"object": "list", "data": [card]})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "model": MODEL_ID, "dimension": model.dimension})

    return Starlette(
        routes=[
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def _encoded(vector: np.ndarray[Any, Any], fmt: str) -> list[float] | str:
    """A vector as floats, or as base64 of little-endian float32 (what OpenAI's SDKs ask for by default)."""
    if fmt == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [round(float(x), 7) for x in vector]


def command(port: int, *, max_tokens: int = MAX_TOKENS) -> list[str]:
    """The command line that serves the bundled model on a loopback port."""
    return [sys.executable, "-m", "rubin_app.embed_server", "--port", str(port), "--max-tokens", str(max_tokens)]


def start(port: int, log_file: Path | None = None, *, timeout: float = 120.0) -> Process:
    """Start the server in the background and wait until it answers (the model is loaded before it listens)."""
    from rubin_app.engine import wait_ready

    if log_file:
        with open(log_file, "ab") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(command(port), stdout=out, stderr=subprocess.STDOUT)
    else:
        proc = subprocess.Popen(command(port), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=timeout, proc=proc)
    except BaseException:
        proc.kill()
        raise
    return proc


def main(argv: list[str] | None = None) -> None:
    """CLI: load the model and serve it in the foreground."""
    import uvicorn

    from rubin_app.config import get_settings

    parser = argparse.ArgumentParser(prog="python -m rubin_app.embed_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: EMBEDDING_PORT")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="word pieces kept per text")
    parser.add_argument("--batch", type=int, default=32, help="most texts per forward pass")
    args = parser.parse_args(argv)
    port = args.port or get_settings().embedding_port
    model = MiniLM(max_tokens=args.max_tokens)
    print(f"[embed] serving {MODEL_ID} (all-MiniLM-L6-v2, {model.dimension} dims) on {args.host}:{port}", flush=True)
    uvicorn.run(create_app(model, batch_size=args.batch), host=args.host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
