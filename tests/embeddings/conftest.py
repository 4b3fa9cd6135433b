"""Fixtures of the embedding tests: the bundled embedding server, started as scripts/run.sh starts it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rubin_app.embed_server import start as start_embed_server
from tests.conftest import free_port

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "embeddings"


@pytest.fixture(scope="session")
def embed_server() -> Iterator[str]:
    """`python -m rubin_app.embed_server` (all-MiniLM-L6-v2) on a free loopback port; its base URL."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = start_embed_server(port, log_file=ARTIFACTS / "embed-server.log")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
