"""Self-test of the stand-in's knowledge endpoints over real HTTP: embeddings, rerank, the context-echo answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .localai_standin import EMBED_DIM, StandIn, StandInConfig, reply_to
from .standin_vectors import context_reply, cosine, embedding_of, passage_numbers

MODEL = "standin-model"


@pytest.fixture(scope="module")
def server() -> Iterator[StandIn]:
    """One stand-in for the whole module."""
    with StandIn() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: StandIn) -> None:
    server.config = StandInConfig()
    server.reset()


def post(server: StandIn, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=5)


def test_embeddings_are_deterministic_and_similar_texts_are_close(server: StandIn) -> None:
    texts = ["How do I back up the database?", "Backing up databases: a how-to", "The cat sat on the mat"]
    first = post(server, "/v1/embeddings", {"model": MODEL, "input": texts}).json()
    again = post(server, "/v1/embeddings", {"model": MODEL, "input": texts}).json()
    vectors = [item["embedding"] for item in first["data"]]
    assert vectors == [item["embedding"] for item in again["data"]] == [embedding_of(t) for t in texts]
    assert [len(v) for v in vectors] == [EMBED_DIM] * 3
    assert cosine(vectors[0], vectors[1]) > 0.4 > 0.15 > abs(cosine(vectors[0], vectors[2]))
    assert server.embedding_requests == 2 and server.embedding_inputs[0] == texts


def test_dimension_switches(server: StandIn) -> None:
    server.config.embedding_dim = 16
    data = post(server, "/v1/embeddings", {"model": MODEL, "input": ["a", "b [[dim=3]]"]}).json()["data"]
    assert [len(item["embedding"]) for item in data] == [16, 3]


@pytest.mark.parametrize(("fault", "status"), [("http500", 500), ("http503", 503)])
def test_embedding_fault_statuses(server: StandIn, fault: str, status: int) -> None:
    server.config.embedding_fault = fault
    assert post(server, "/v1/embeddings", {"model": MODEL, "input": "a"}).status_code == status
    response = post(server, "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200  # chat is not affected


def test_down_closes_the_connection_and_malformed_is_no_list(server: StandIn) -> None:
    server.config.embedding_fault = "down"
    with pytest.raises(httpx.RemoteProtocolError):
        post(server, "/v1/embeddings", {"model": MODEL, "input": "a"}).read()
    server.config.embedding_fault = "malformed"
    assert "data" not in post(server, "/v1/embeddings", {"model": MODEL, "input": "a"}).json()


def test_too_long_inputs_get_a_400(server: StandIn) -> None:
    server.config.embedding_max_chars = 5
    response = post(server, "/v1/embeddings", {"model": MODEL, "input": ["ok", "too long"]})
    assert response.status_code == 400 and "too long" in response.json()["error"]["message"]


def test_rerank_orders_documents_by_the_query_words_they_have(server: StandIn) -> None:
    documents = ["Cats and dogs", "Backups of the database run nightly", {"text": "database backups"}, "database"]
    body = {"model": MODEL, "query": "database backups", "documents": documents, "top_n": 3}
    reply = post(server, "/v1/rerank", body).json()
    assert [r["index"] for r in reply["results"]] == [1, 2, 3]
    assert [r["relevance_score"] for r in reply["results"]] == [1.0, 1.0, 0.5]
    assert reply["results"][1]["document"] == {"text": "database backups"}
    assert server.rerank_requests == 1 and server.last_rerank_json == body
    assert post(server, "/v1/rerank", {"model": MODEL, "query": "q"}).status_code == 400
    assert post(server, "/v1/rerank", {"model": "nope", "query": "q", "documents": []}).status_code == 404


def test_the_context_echo_answer_names_the_passages_it_got(server: StandIn) -> None:
    system = "Answer from the sources.\n[1] Rubies are red.\n[2] (file.pdf, p. 3) Sapphires are blue.\n"
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Colours? [[echo_context]]"}]
    reply = post(server, "/v1/chat/completions", {"model": MODEL, "messages": messages}).json()
    assert reply["choices"][0]["message"]["content"] == "See [1] and [2]."
    assert server.last_answer_json is not None and server.last_answer_json["messages"][0]["content"] == system
    server.config.echo_context = True  # every question, no marker needed
    bare = [{"role": "user", "content": "No sources here."}]
    reply = post(server, "/v1/chat/completions", {"model": MODEL, "messages": bare}).json()
    assert reply["choices"][0]["message"]["content"] == "The documents do not contain the answer."
    server.config.echo_context = False
    assert reply_to("plain question") == post(server, "/v1/chat/completions", {"model": MODEL, "messages": [
        {"role": "user", "content": "plain question"}]}).json()["choices"][0]["message"]["content"]  # fmt: skip


def test_context_reply_wording() -> None:
    assert context_reply(["[3] c\n[1] a\n[3] again"]) == "See [3] and [1]."
    assert context_reply(["[1] a", "[2] b\n[4] d"]) == "See [1], [2] and [4]."
    assert context_reply(["[1] only"]) == "See [1]."
    assert passage_numbers(["not [1] at a line start"]) == []
