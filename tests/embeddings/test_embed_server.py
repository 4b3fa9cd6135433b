"""The bundled embedding server over real HTTP: OpenAI-shaped, what the OpenAI SDK and Rubin's client read."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from rubin_app.embed_model import DIMENSION
from rubin_app.embed_server import MAX_INPUTS, MODEL_ID, start
from tests.conftest import free_port


def test_models_and_health(embed_server: str) -> None:
    models = httpx.get(f"{embed_server}/v1/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [MODEL_ID]
    health = httpx.get(f"{embed_server}/health", timeout=10).json()
    assert health == {"status": "ok", "model": MODEL_ID, "dimension": DIMENSION, "loaded": health["loaded"]}


def test_the_openai_sdk_gets_normalised_vectors_in_order(embed_server: str) -> None:
    client = openai.OpenAI(base_url=f"{embed_server}/v1", api_key="unused")
    texts = ["A man is eating food.", "A monkey is playing drums.", "A man is eating a piece of bread."]
    result = client.embeddings.create(model=MODEL_ID, input=texts)  # the SDK asks for base64 floats
    vectors = np.array([item.embedding for item in result.data])
    assert [item.index for item in result.data] == [0, 1, 2]
    assert vectors.shape == (3, DIMENSION)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[2] > 0.7 > 0.1 > vectors[0] @ vectors[1]
    assert result.usage.prompt_tokens > 3 * 2  # word pieces, [CLS] and [SEP] included
    floats = client.embeddings.create(model=MODEL_ID, input=texts[0], encoding_format="float")
    assert np.allclose(floats.data[0].embedding, vectors[0], atol=1e-6)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"model": MODEL_ID}, 400, "input"),
        ({"model": MODEL_ID, "input": []}, 400, "input"),
        ({"model": MODEL_ID, "input": [[101, 102]]}, 400, "token arrays"),
        ({"model": MODEL_ID, "input": ["a"] * (MAX_INPUTS + 1)}, 400, "at most"),
        ({"model": MODEL_ID, "input": "a", "encoding_format": "int8"}, 400, "encoding_format"),
        ({"model": "gpt-4", "input": "a"}, 404, "not found"),
        ([1, 2], 400, "JSON object"),
    ],
)
def test_bad_requests_get_openai_shaped_errors(embed_server: str, body: object, status: int, says: str) -> None:
    response = httpx.post(f"{embed_server}/v1/embeddings", json=body, timeout=10)
    assert response.status_code == status
    assert says in response.json()["error"]["message"]


def test_a_body_that_is_not_json_is_refused(embed_server: str) -> None:
    response = httpx.post(f"{embed_server}/v1/embeddings", content=b"{nope", timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "the body is not JSON"


def test_the_model_is_loaded_at_first_use_freed_when_idle_and_answers_the_same_after(tmp_path: Path) -> None:
    port = free_port()
    proc = start(port, log_file=tmp_path / "embed.log", idle_seconds=1.0)
    base = f"http://127.0.0.1:{port}"
    texts = ["Привет, мир", "The quick brown fox jumps over the lazy dog."]
    try:
        assert httpx.get(f"{base}/health", timeout=10).json()["loaded"] is False  # nothing loaded at start
        first = httpx.post(f"{base}/v1/embeddings", json={"input": texts}, timeout=60).json()
        assert httpx.get(f"{base}/health", timeout=10).json()["loaded"] is True
        deadline = time.monotonic() + 20
        while httpx.get(f"{base}/health", timeout=10).json()["loaded"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert httpx.get(f"{base}/health", timeout=10).json()["loaded"] is False
        assert "model freed after the idle time" in (tmp_path / "embed.log").read_text()
        again = httpx.post(f"{base}/v1/embeddings", json={"input": texts}, timeout=60).json()
        assert [d["index"] for d in again["data"]] == [0, 1]
        before = np.array([d["embedding"] for d in first["data"]])
        after = np.array([d["embedding"] for d in again["data"]])
        assert after.shape == (2, DIMENSION) and np.allclose(before, after, atol=1e-6)
        assert again["usage"] == first["usage"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_servers_constants_match_the_model() -> None:
    from rubin_app import embed_model, embed_server

    assert (embed_server.DIMENSION, embed_server.MAX_TOKENS) == (embed_model.DIMENSION, embed_model.MAX_TOKENS)
