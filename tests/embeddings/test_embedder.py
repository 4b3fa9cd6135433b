"""The Embedder against real servers: the LocalAI stand-in (with its faults) and the bundled embedding server."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from rubin_app.config import Settings
from rubin_app.embed_model import DIMENSION
from rubin_app.llm.client import LLMClient
from rubin_app.llm.embeddings import BUNDLED_MODEL, Embedder, EmbeddingError, default_embedder
from tests.conftest import free_port
from tests.fakes.localai_standin import EMBED_DIM, StandIn, embedding_of

MODEL = "standin-model"


def client(url: str) -> LLMClient:
    """A client that retries quickly."""
    return LLMClient(url, retries=1, backoff=0.01, read_timeout=5)


def dot(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


async def test_vectors_come_back_in_order_normalised_in_batches(standin: StandIn) -> None:
    embedder = Embedder(client(standin.url), MODEL, batch_size=4)
    texts = [f"document number {i} about rubies" for i in range(10)]
    vectors = await embedder.embed(texts)
    assert [len(v) for v in vectors] == [EMBED_DIM] * 10
    assert all(math.isclose(dot(v, v), 1.0, abs_tol=1e-6) for v in vectors)
    assert vectors[3] == pytest.approx(embedding_of(texts[3]), abs=1e-5)
    assert [len(batch) for batch in standin.embedding_inputs] == [4, 4, 2]
    assert embedder.dimension == EMBED_DIM
    await embedder.client.aclose()


async def test_an_e5_model_gets_its_query_and_passage_prefixes(standin: StandIn) -> None:
    standin.config.models = ["multilingual-e5-small"]
    embedder = Embedder(client(standin.url), "multilingual-e5-small")
    await embedder.embed(["what is a ruby"], kind="query")
    await embedder.embed(["a ruby is a red gem"])
    assert standin.embedding_inputs == [["query: what is a ruby"], ["passage: a ruby is a red gem"]]
    await embedder.client.aclose()


async def test_the_stand_in_is_meaningful(standin: StandIn) -> None:
    embedder = Embedder(client(standin.url), MODEL)
    gem, gems, ru_gem, unrelated = await embedder.embed(
        ["Rubies are red gemstones", "a red gemstone: the ruby", "Рубины — красные камни", "Kubernetes pod scheduling"]
    )
    assert dot(gem, gems) > 0.5 > 0.2 > abs(dot(gem, unrelated))
    assert dot(ru_gem, gem) < 0.5  # other words
    await embedder.client.aclose()


@pytest.mark.parametrize(
    ("fault", "code"),
    [("down", "unreachable"), ("http500", "unreachable"), ("http503", "unreachable"), ("malformed", "bad_response")],
)
async def test_embedding_faults_are_embedding_errors(standin: StandIn, fault: str, code: str) -> None:
    standin.config.embedding_fault = fault
    embedder = Embedder(client(standin.url), MODEL)
    with pytest.raises(EmbeddingError) as info:
        await embedder.embed(["a text"])
    assert info.value.code == code
    assert standin.url in info.value.message or code == "bad_response"
    await embedder.client.aclose()


async def test_a_server_nobody_listens_on_is_unreachable() -> None:
    embedder = Embedder(client(f"http://127.0.0.1:{free_port()}"), MODEL)
    with pytest.raises(EmbeddingError) as info:
        await embedder.embed(["a text"])
    assert info.value.code == "unreachable"
    await embedder.client.aclose()


async def test_a_wrong_dimension_is_caught_within_a_reply_and_across_calls(standin: StandIn) -> None:
    embedder = Embedder(client(standin.url), MODEL)
    with pytest.raises(EmbeddingError) as info:
        await embedder.embed(["fine", "this one [[dim=32]]"])
    assert info.value.code == "wrong_dimension"
    await embedder.embed(["fine"])
    standin.config.embedding_dim = 48  # the server's model was swapped
    with pytest.raises(EmbeddingError) as info:
        await embedder.embed(["fine"])
    assert (info.value.code, "48" in info.value.message) == ("wrong_dimension", True)
    fixed = Embedder(client(standin.url), MODEL, dimension=384)  # what an index was built with
    with pytest.raises(EmbeddingError, match="expected 384"):
        await fixed.embed(["fine"])
    await embedder.client.aclose()
    await fixed.client.aclose()


async def test_unknown_model_and_too_long_input(standin: StandIn) -> None:
    unknown = Embedder(client(standin.url), "no-such-model")
    with pytest.raises(EmbeddingError) as info:
        await unknown.embed(["a"])
    assert info.value.code == "not_configured"
    standin.config.embedding_max_chars = 10
    embedder = Embedder(client(standin.url), MODEL)
    with pytest.raises(EmbeddingError) as info:
        await embedder.embed(["short", "far too long for this server"])
    assert info.value.code == "too_long"
    await unknown.client.aclose()
    await embedder.client.aclose()


async def test_the_bundled_server_through_the_embedder(embed_server: str) -> None:
    embedder = Embedder(client(embed_server), BUNDLED_MODEL, batch_size=2)
    food, bread, drums = await embedder.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "A monkey is playing drums."]
    )
    assert embedder.dimension == DIMENSION
    assert dot(food, bread) == pytest.approx(0.7553, abs=6e-4)
    assert dot(food, drums) < 0.1
    await embedder.client.aclose()


def test_default_embedder_follows_the_settings(make_settings: Callable[..., Settings]) -> None:
    assert default_embedder(make_settings(embeddings_enabled=False)) is None
    bundled = default_embedder(make_settings(embedding_port=9123, embedding_batch=8))
    assert bundled is not None
    assert (bundled.client.base_url, bundled.model, bundled.batch_size) == ("http://127.0.0.1:9123", "rubin-embed", 8)
    on_localai = default_embedder(make_settings(localai_url="http://localai:8080", embedding_model="bge-m3"))
    assert on_localai is not None
    assert (on_localai.client.base_url, on_localai.model) == ("http://localai:8080", "bge-m3")
    assert bundled.languages == frozenset({"en"}) and on_localai.languages is None  # MiniLM is English-only
    told = default_embedder(
        make_settings(localai_url="http://localai:8080", embedding_model="e5", embedding_languages="en, de")
    )
    assert told is not None and told.languages == frozenset({"en", "de"})
    seen: list[str] = []
    shared = LLMClient("http://other:1")

    def client_for(model: str) -> tuple[LLMClient, str]:
        seen.append(model)
        return shared, "upstream-name"

    routed: Any = default_embedder(make_settings(embedding_model="bge@cloud"), client_for)
    assert (routed.client, routed.model, seen) == (shared, "upstream-name", ["bge@cloud"])
