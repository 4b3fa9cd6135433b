"""Who starts the bundled embedding server: the container's command does, unless EMBEDDING_MODEL names a model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from rubin_app import container
from rubin_app.config import Settings
from rubin_app.engine import wait_ready
from tests.conftest import free_port


def test_the_container_starts_it_only_without_an_embedding_model(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    assert container.start_embedder(make_settings(embedding_model="bge-m3", data_dir=tmp_path)) is None
    assert container.start_embedder(make_settings(embeddings_enabled=False, data_dir=tmp_path)) is None
    port = free_port()
    proc = container.start_embedder(make_settings(embedding_port=port, data_dir=tmp_path))
    assert proc is not None
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=60, proc=proc)  # start_embedder does not wait
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert health["model"] == "rubin-embed"
        assert "serving rubin-embed" in (tmp_path / "embed.log").read_text()
    finally:
        proc.terminate()
        proc.wait(10)
