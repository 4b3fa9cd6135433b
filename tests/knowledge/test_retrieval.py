"""Hybrid retrieval: fusion, relevance floor, isolation between users, degraded modes; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from rubin_app.knowledge.index import KnowledgeIndex
from rubin_app.knowledge.models import FileStatus
from rubin_app.knowledge.retrieval import Reranker, accessible_kb_ids, retrieve
from rubin_app.llm.client import LLMClient, LLMError
from tests.factories import make_user
from tests.knowledge.helpers import HashEmbedder, add_file, make_kb

Scope = Callable[[], Any]

CORPUS = [
    "The printer driver must be installed before the first print job.",
    "Printer driver error E4012 means the paper tray is open.",
    "Reinstall the printer driver when pages come out blank.",
    "Файлы загружаются в базу знаний перетаскиванием на страницу.",
    "Резервные копии сервера хранятся семь дней.",
    "The server restarts every night at three o'clock for updates.",
    "Пароль администратора меняется в разделе настроек безопасности.",
    "Configure the proxy with the HTTPS_PROXY environment variable.",
    "Kubernetes manifests live in deploy/k8s and are rendered with kustomize.",
    "Отчёты об ошибках отправляются разработчикам автоматически.",
]
# (question, index of the passage that answers it)
QUESTIONS = [
    ("printer error E4012", 1),  # a rare exact code: full-text's strength
    ("как загрузить документы", 3),  # "загрузить" vs "загружаются": different stems, shared letters
    ("when does the server reboot at night", 5),
    ("где хранятся резервные копии", 4),
    ("how to configure a proxy", 7),
    ("kustomize manifests", 8),
    ("смена пароля администратора", 6),
    ("blank pages printer", 2),
    ("отчет об ошибке", 9),
]


@pytest.fixture
async def world(scope: Scope, index: KnowledgeIndex) -> dict[str, Any]:
    """Users A, B and C: A's private base (the corpus), B's own small base, C's shared base."""
    embedder = HashEmbedder()
    async with scope() as session:
        a, b, c = [await make_user(session) for _ in range(3)]
        kb_a = await make_kb(session, owner_id=a.id, name="a")
        kb_b = await make_kb(session, owner_id=b.id, name="b")
        kb_shared = await make_kb(session, owner_id=c.id, name="shared", shared=True)
        _, chunks_a = await add_file(session, index, kb_a, CORPUS, filename="manual.md", embedder=embedder)
        _, chunks_b = await add_file(
            session, index, kb_b, ["B's notes: the printer is on floor two."], embedder=embedder
        )
        _, chunks_s = await add_file(
            session, index, kb_shared, ["Company policy: printer paper is ordered monthly."], embedder=embedder
        )
        return {"a": a.id, "b": b.id, "kb_a": kb_a.id, "kb_b": kb_b.id, "kb_shared": kb_shared.id,
                "chunks_a": [x.id for x in chunks_a], "chunk_b": chunks_b[0].id, "chunk_s": chunks_s[0].id,
                "embedder": embedder}  # fmt: skip


async def _ask(scope: Scope, index: KnowledgeIndex, user: int, query: str, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("kb_ids", None)
    kwargs.setdefault("embedder", HashEmbedder())
    async with scope() as session:
        return await retrieve(session=session, index=index, user_id=user, query=query, **kwargs)


async def test_passages_carry_their_source(scope: Scope, index: KnowledgeIndex, world: dict[str, Any]) -> None:
    passages = await _ask(scope, index, world["a"], "printer error E4012", k=3)
    top = passages[0]
    assert top.chunk_id == world["chunks_a"][1] and top.filename == "manual.md" and top.heading == "Part 1"
    assert top.text == CORPUS[1] and top.kb_id == world["kb_a"] and top.page is None
    assert top.text_rank == 1 and top.vector_rank is not None and 0 < top.relevance <= 1
    assert len(passages) <= 3 and [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)


async def test_hybrid_is_at_least_as_good_as_either_search_alone(
    scope: Scope, index: KnowledgeIndex, world: dict[str, Any]
) -> None:
    def mrr(results: list[list[int]]) -> float:
        total = 0.0
        for (_, expected), found in zip(QUESTIONS, results, strict=True):
            chunk = world["chunks_a"][expected]
            total += 1 / (found.index(chunk) + 1) if chunk in found else 0
        return total / len(QUESTIONS)

    scores = {}
    for name, modes in [("text", ("text",)), ("vector", ("vector",)), ("hybrid", ("text", "vector"))]:
        results = []
        for question, _ in QUESTIONS:
            found = await _ask(scope, index, world["a"], question, kb_ids=[world["kb_a"]], modes=modes, min_score=0)
            results.append([p.chunk_id for p in found])
        scores[name] = mrr(results)
    assert scores["hybrid"] >= scores["text"] and scores["hybrid"] >= scores["vector"], scores
    assert scores["hybrid"] >= 0.9, scores
    assert scores["text"] < 1.0, scores  # the set does test something: full-text alone misses a question


async def test_off_topic_questions_get_nothing(scope: Scope, index: KnowledgeIndex, world: dict[str, Any]) -> None:
    for question in ["recipe for chocolate cake with cherries", "рецепт борща со сметаной", "weather in Lisbon"]:
        assert await _ask(scope, index, world["a"], question) == [], question
    assert await _ask(scope, index, world["a"], "printer error E4012")  # the same floor keeps on-topic answers


async def test_a_user_never_gets_another_users_chunks(
    scope: Scope, index: KnowledgeIndex, world: dict[str, Any]
) -> None:
    chunks_a = set(world["chunks_a"])
    for kb_ids in [None, [world["kb_a"]], [world["kb_a"], world["kb_b"]], [world["kb_a"], world["kb_shared"]]]:
        for question, _ in QUESTIONS:
            found = await _ask(scope, index, world["b"], question, kb_ids=kb_ids, min_score=0, k=20)
            assert not chunks_a & {p.chunk_id for p in found}, (kb_ids, question)
    mine = await _ask(scope, index, world["b"], "printer", min_score=0)
    assert {p.chunk_id for p in mine} == {world["chunk_b"], world["chunk_s"]}  # own + shared, by default
    assert await _ask(scope, index, world["b"], "printer", kb_ids=[world["kb_a"]], min_score=0) == []
    async with scope() as session:
        asked = [world["kb_a"], world["kb_b"], world["kb_shared"], 999_999]
        assert await accessible_kb_ids(session=session, user_id=world["b"], kb_ids=asked) == [
            world["kb_b"], world["kb_shared"]]  # fmt: skip
        assert await accessible_kb_ids(session=session, user_id=world["b"], kb_ids=[]) == []
        everyone = await accessible_kb_ids(session=session, user_id=world["a"], kb_ids=None)
        assert everyone == [world["kb_a"], world["kb_shared"]]


async def test_embedder_failure_falls_back_to_full_text(
    scope: Scope, index: KnowledgeIndex, world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    down = HashEmbedder(fail=True)
    passages = await _ask(scope, index, world["a"], "printer error E4012", embedder=down)
    assert down.calls == 1 and passages[0].chunk_id == world["chunks_a"][1]
    assert all(p.vector_rank is None for p in passages)
    assert "full-text retrieval only" in caplog.text and "E4012" not in caplog.text  # no query text in logs
    no_embedder = await _ask(scope, index, world["a"], "printer error E4012", embedder=None)
    assert [p.chunk_id for p in no_embedder] == [p.chunk_id for p in passages]
    other_model = await _ask(scope, index, world["a"], "printer E4012", embedder=HashEmbedder(model="another"))
    assert all(p.vector_rank is None for p in other_model)  # vectors of another model are not compared


async def test_an_english_only_embedder_is_not_asked_to_rank_a_russian_question(
    scope: Scope, index: KnowledgeIndex, world: dict[str, Any]
) -> None:
    """The bundled model is English-only: a Russian question is found by its words alone (vectors would only add
    noise), an English one by both searches."""
    english = HashEmbedder(languages=frozenset({"en"}))
    russian = await _ask(scope, index, world["a"], "где хранятся резервные копии", embedder=english)
    assert english.calls == 0 and russian[0].chunk_id == world["chunks_a"][4]
    assert all(p.vector_rank is None for p in russian)
    found = await _ask(scope, index, world["a"], "how to configure a proxy", embedder=english)
    assert english.calls == 1 and found[0].chunk_id == world["chunks_a"][7] and found[0].vector_rank is not None


async def test_only_ready_files_are_retrieved(scope: Scope, index: KnowledgeIndex, world: dict[str, Any]) -> None:
    async with scope() as session:
        from rubin_app.knowledge.models import KnowledgeBase

        kb = await session.get(KnowledgeBase, world["kb_a"])
        assert kb is not None
        await add_file(
            session, index, kb, ["Zebra stripes confuse flies."], filename="z.txt", status=FileStatus.embedding
        )
    found = await _ask(scope, index, world["a"], "zebra stripes", min_score=0, k=50)
    assert "Zebra stripes confuse flies." not in {p.text for p in found}


class _Reversing:
    """A rerank client that ranks documents in reverse order (or fails)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    async def rerank(self, model: str, query: str, documents: list[str]) -> list[tuple[int, float]]:
        if self.fail:
            raise LLMError("unreachable", "rerank server down")
        return [(i, float(i)) for i in reversed(range(len(documents)))]


async def test_reranker_reorders_and_its_failure_keeps_the_fused_order(
    scope: Scope, index: KnowledgeIndex, world: dict[str, Any]
) -> None:
    fused = await _ask(scope, index, world["a"], "printer driver", min_score=0, k=50)
    assert len(fused) >= 3
    reranked = await _ask(scope, index, world["a"], "printer driver", min_score=0, k=50,
                          reranker=Reranker(_Reversing(), "rerank-model"))  # fmt: skip
    assert [p.chunk_id for p in reranked] == [p.chunk_id for p in reversed(fused)]
    kept = await _ask(scope, index, world["a"], "printer driver", min_score=0, k=50,
                      reranker=Reranker(_Reversing(fail=True), "rerank-model"))  # fmt: skip
    assert [p.chunk_id for p in kept] == [p.chunk_id for p in fused]


@pytest.fixture
def rerank_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server answering POST /v1/rerank by word overlap (Jina/LocalAI shape)."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            if body["model"] == "broken":
                payload: dict[str, Any] = {"oops": True}
            else:
                words = set(body["query"].lower().split())
                scores = [len(words & set(doc.lower().split())) / 10 for doc in body["documents"]]
                payload = {"results": [{"index": i, "relevance_score": s} for i, s in enumerate(scores)]}
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


async def test_client_rerank_over_http(rerank_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = rerank_server
    client = LLMClient(url, retries=0)
    try:
        ranked = await client.rerank("reranker", "red apple", ["green pear", "red apple pie", "apple"])
        assert ranked == [(1, 0.2), (2, 0.1), (0, 0.0)]
        assert received[0] == {"model": "reranker", "query": "red apple",
                               "documents": ["green pear", "red apple pie", "apple"], "top_n": 3}  # fmt: skip
        assert await Reranker(client, "reranker").order("red apple", ["x", "apple", "red apple"]) == [2, 1, 0]
        with pytest.raises(LLMError) as bad:
            await client.rerank("broken", "q", ["a"])
        assert bad.value.code == "malformed"
    finally:
        await client.aclose()
