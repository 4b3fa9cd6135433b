"""The real-model tests' fixtures: the bundled engine, the bundled embedding server (`embed_server`, from
tests/embeddings/conftest.py), and Debian Chromium (never a downloaded browser)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import CHROMIUM_ARGS, free_port
from rubin_app.engine import start as start_engine
from tests.embeddings.conftest import embed_server

__all__ = ["embed_server"]  # a fixture: the real-model app runs with EMBEDDING_PORT at its port

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "llm"


@pytest.fixture(scope="session")
def engine() -> Iterator[str]:
    """The bundled llama.cpp engine on a free loopback port."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    data_dir = Path(__file__).resolve().parents[2] / "data"
    proc = start_engine(port, "gemma-3-270m", data_dir, log_file=ARTIFACTS / "engine.log")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Use /usr/bin/chromium with the flags this machine needs."""
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS}
