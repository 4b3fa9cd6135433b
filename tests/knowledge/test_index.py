"""The knowledge index on SQLite (FTS5 + sqlite-vec) and PostgreSQL (tsvector + pgvector): the same cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rubin_app.backup.database import dump_sqlite
from rubin_app.knowledge.analyzer import index_terms, query_terms
from rubin_app.knowledge.index import KnowledgeIndex, KnowledgeIndexError, close_indexes, knowledge_index
from rubin_app.knowledge.index_sqlite import SqliteIndex
from rubin_app.knowledge.models import KnowledgeBase, KnowledgeChunk
from rubin_app.services import db as db_module
from tests.factories import make_user
from tests.knowledge.helpers import HashEmbedder, add_file, hashed_embedding, make_kb

Scope = Callable[[], Any]

MANUAL = [
    "Uploading files: drag several files onto the page; each file shows a progress bar.",
    "The server runs a nightly backup and keeps seven copies.",
    "Файлы загружаются в базу знаний, и каждый файл проходит проверку.",
    "Резервные копии хранятся семь дней на отдельном диске.",
]


async def _setup(scope: Scope, index: KnowledgeIndex, embedder: HashEmbedder | None = None) -> dict[str, Any]:
    async with scope() as session:
        user = await make_user(session)
        kb = await make_kb(session, owner_id=user.id)
        file, chunks = await add_file(session, index, kb, MANUAL, embedder=embedder)
        return {"user": user.id, "kb": kb.id, "file": file.id, "chunks": [c.id for c in chunks]}


def test_terms_are_stemmed_russian_and_english() -> None:
    assert index_terms("Файлы, ФАЙЛОВ и файл") == "файл файл и файл"
    assert index_terms("running runs run") == "run run run"
    assert index_terms("Ёлка") == index_terms("елка")
    assert query_terms("What is the backup?") == ["backup"]
    assert query_terms("the") == ["the"]  # only stop words: they are kept rather than asking nothing


async def test_text_search_finds_by_stem_in_both_languages(scope: Scope, index: KnowledgeIndex) -> None:
    ids = await _setup(scope, index)
    chunks = ids["chunks"]
    assert [c for c, _ in await index.search_text([ids["kb"]], "файлы", 5)] == [chunks[2]]
    assert [c for c, _ in await index.search_text([ids["kb"]], "running backups", 5)] == [chunks[1]]
    hits = await index.search_text([ids["kb"]], "файл копии", 5)
    assert {c for c, _ in hits} == {chunks[2], chunks[3]}
    assert all(score > 0 for _, score in hits)
    assert await index.search_text([ids["kb"]], "quantum chromodynamics", 5) == []
    assert await index.search_text([ids["kb"] + 1000], "файлы", 5) == []  # another base: nothing
    assert await index.search_text([ids["kb"]], "?!", 5) == []


async def test_frequent_terms_are_left_out_past_the_budget(
    scope: Scope, index: KnowledgeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await _setup(scope, index)
    async with scope() as session:
        kb = await session.get(KnowledgeBase, ids["kb"])
        assert kb is not None
        _, more = await add_file(session, index, kb, ["A backup file.", "Backup again."], filename="b.txt")
    found = {c for c, _ in await index.search_text([ids["kb"]], "pages backup", 10)}
    assert found == {ids["chunks"][0], ids["chunks"][1], more[0].id, more[1].id}
    monkeypatch.setattr(index, "TEXT_BUDGET", 2)  # "page" is in 1 passage, "backup" in 3: only "page" is asked
    assert [c for c, _ in await index.search_text([ids["kb"]], "pages backup", 10)] == [ids["chunks"][0]]
    await index.delete_file(ids["file"])  # the counts follow deletions: "backup" is in 2 passages now
    monkeypatch.setattr(index, "TEXT_BUDGET", 3)
    assert {c for c, _ in await index.search_text([ids["kb"]], "pages backup", 10)} == {more[0].id, more[1].id}


async def test_vector_search_nearest_first(scope: Scope, index: KnowledgeIndex) -> None:
    embedder = HashEmbedder()
    ids = await _setup(scope, index, embedder)
    assert index.vectors_available
    hits = await index.search_vector([ids["kb"]], hashed_embedding("nightly backup copies"), 4)
    assert hits[0][0] == ids["chunks"][1]
    assert [d for _, d in hits] == sorted(d for _, d in hits)
    assert 0 <= hits[0][1] < hits[-1][1] <= 2
    assert await index.search_vector([ids["kb"]], hashed_embedding("backup", dim=128), 4) == []  # other size


async def test_delete_file_and_base_empty_both_indexes(scope: Scope, index: KnowledgeIndex) -> None:
    embedder = HashEmbedder()
    ids = await _setup(scope, index, embedder)
    async with scope() as session:
        kb = await session.get(KnowledgeBase, ids["kb"])
        assert kb is not None and kb.embedding_dim == 256  # recorded by the first vectors
        _, kept = await add_file(session, index, kb, ["Backup of the other file."], filename="b.txt", embedder=embedder)
    query = hashed_embedding("backup")
    assert len(await index.search_text([ids["kb"]], "backup", 10)) == 2
    await index.delete_file(ids["file"])
    assert [c for c, _ in await index.search_text([ids["kb"]], "backup", 10)] == [kept[0].id]
    assert [c for c, _ in await index.search_vector([ids["kb"]], query, 10)] == [kept[0].id]
    await index.delete_kb(ids["kb"])
    assert await index.search_text([ids["kb"]], "backup", 10) == []
    assert await index.search_vector([ids["kb"]], query, 10) == []


async def test_re_adding_a_chunk_replaces_it(scope: Scope, index: KnowledgeIndex) -> None:
    embedder = HashEmbedder()
    ids = await _setup(scope, index, embedder)
    async with scope() as session:
        chunk = await session.get(KnowledgeChunk, ids["chunks"][1])
        assert chunk is not None
        chunk.text = "Penguins live in Antarctica."
    await index.add([chunk], await embedder.embed([chunk.text]))
    assert await index.search_text([ids["kb"]], "nightly", 5) == []
    assert [c for c, _ in await index.search_text([ids["kb"]], "penguin", 5)] == [chunk.id]
    assert (await index.search_vector([ids["kb"]], hashed_embedding("penguins"), 1))[0][0] == chunk.id


async def test_vectors_of_the_wrong_size_are_refused_and_nothing_is_lost(scope: Scope, index: KnowledgeIndex) -> None:
    embedder = HashEmbedder()
    ids = await _setup(scope, index, embedder)
    async with scope() as session:
        kb = await session.get(KnowledgeBase, ids["kb"])
        assert kb is not None
        with pytest.raises(KnowledgeIndexError) as refused:
            await add_file(session, index, kb, ["Another backup note."], filename="c.txt", embedder=HashEmbedder(128))
    assert refused.value.code == "wrong_dimension" and "256" in refused.value.message
    chunks = [KnowledgeChunk(id=ids["chunks"][0], file_id=ids["file"], kb_id=ids["kb"], owner_id=ids["user"], text="x")]
    for vectors, code in [
        ([[1.0] * 256, [1.0] * 256], "bad_vector"),  # two vectors for one chunk
        ([[float("nan")] * 256], "bad_vector"),
        ([[]], "wrong_dimension"),
    ]:
        with pytest.raises(KnowledgeIndexError) as bad:
            await index.add(chunks, vectors)
        assert bad.value.code == code
    with pytest.raises(KnowledgeIndexError, match="ids"):
        await index.add([KnowledgeChunk(file_id=1, kb_id=1, owner_id=1, text="unsaved")], None)
    # what was indexed before is all still there
    assert len(await index.search_text([ids["kb"]], "backup копии файлы", 10)) == 3
    assert len(await index.search_vector([ids["kb"]], hashed_embedding("backup"), 10)) == 4


async def test_binary_candidates_then_exact_rerank_on_sqlite(
    scope: Scope, index: KnowledgeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over KNOWLEDGE_EXACT_SEARCH_LIMIT vectors, SQLite scans one-bit vectors (sqlite-vec) then re-ranks
    exactly; PostgreSQL's HNSW path is the one every other case takes."""
    if isinstance(index, SqliteIndex):
        monkeypatch.setattr(index, "exact_limit", 0)
    embedder = HashEmbedder()
    ids = await _setup(scope, index, embedder)
    async with scope() as session:
        other_kb = await make_kb(session, owner_id=ids["user"], name="other")
        await add_file(session, index, other_kb, ["Nightly backup, seven copies kept."], embedder=embedder)
    for text, position in [("nightly backup copies", 1), ("файлы загружаются", 2), ("семь дней диск", 3)]:
        hits = await index.search_vector([ids["kb"]], hashed_embedding(text), 2)
        assert hits[0][0] == ids["chunks"][position], text
        assert abs(hits[0][1] - _cosine_distance(hashed_embedding(text), hashed_embedding(MANUAL[position]))) < 1e-4
    both = await index.search_vector([ids["kb"], other_kb.id], hashed_embedding("nightly backup copies"), 2)
    assert len(both) == 2 and ids["chunks"][1] in {c for c, _ in both}


def _cosine_distance(a: list[float], b: list[float]) -> float:
    return 1.0 - sum(x * y for x, y in zip(a, b, strict=True))


async def test_postgresql_without_pgvector_is_full_text_only(fresh_database: Callable[[str], str]) -> None:
    url = fresh_database("postgresql")  # Debian's PostgreSQL: no `vector` extension
    index = knowledge_index(url)
    try:
        ids = await _setup(lambda: db_module.session_scope(url), index, HashEmbedder())
        assert not index.vectors_available
        assert [c for c, _ in await index.search_text([ids["kb"]], "файлы", 5)] == [ids["chunks"][2]]
        assert await index.search_vector([ids["kb"]], hashed_embedding("backup"), 5) == []
    finally:
        await close_indexes()
        await db_module.dispose_all()


async def test_sqlite_backup_reads_a_database_with_vector_tables(
    fresh_database: Callable[[str], str], tmp_path: Any
) -> None:
    """The app's own sqlite3 cannot load sqlite-vec: backups of a database holding the index still work."""
    url = fresh_database("sqlite")
    try:
        ids = await _setup(lambda: db_module.session_scope(url), knowledge_index(url), HashEmbedder())
    finally:
        await close_indexes()
        await db_module.dispose_all()
    snapshot = dump_sqlite(url.replace("sqlite+aiosqlite://", "sqlite://"), tmp_path / "copy.db")
    assert snapshot.tables["knowledge_chunks"] == 4
    assert snapshot.tables["knowledge_vec_256"] == 4
    copy = knowledge_index(f"sqlite+aiosqlite:///{tmp_path / 'copy.db'}")
    try:
        assert len(await copy.search_vector([ids["kb"]], hashed_embedding("backup"), 5)) == 4
    finally:
        await close_indexes()
