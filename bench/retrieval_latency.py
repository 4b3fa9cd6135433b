"""Retrieval latency (issue #15): p50/p95 of retrieve() at 10k and 100k chunks, SQLite and PostgreSQL+pgvector.

Chunks are ~1,000 characters of real prose: English docstrings of the Python standard library and Russian
sentences of Rubin's own Russian texts (UI strings, the Russian roadmap), mixed 70/30. Vectors are 384 numbers
(the bundled MiniLM's size) drawn around 200 topic centres, so the HNSW graph sees clustered data like real
embeddings; the query embedding is precomputed (embedding time is the embedder bench's business). Every
query asks across all of one user's 10 knowledge bases. Reported per backend and size: full-text only,
vectors only and hybrid (both + fusion + loading the passages), each the whole retrieve() call.
Usage: scripts/bench.sh retrieval [--sizes 10000,100000] [--queries 200] [--backends sqlite,postgres]
       [--postgres-url postgresql+psycopg://…]   (default: a throwaway PostgreSQL 16 + pgvector from pgserver)
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, percentile, print_table  # noqa: E402
from tests.knowledge.pgvector_server import PgvectorServer  # noqa: E402

DIM, KBS, TOPICS, CHUNK_CHARS = 384, 10, 200, 1000


@lru_cache(maxsize=1)
def _sentences() -> tuple[list[str], list[str]]:
    """English sentences (stdlib docstrings) and Russian ones (Rubin's Russian texts)."""
    english: list[str] = []
    for path in sorted(Path(os.__file__).parent.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and (doc := ast.get_docstring(node)):
                english += [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())) if len(s) > 30]
    russian = [v for v in json.loads((ROOT / "rubin_app/i18n/ru.json").read_text()).values() if isinstance(v, str)]
    roadmap = ROOT.parent.parent / "shared/docs/roadmap.ru.md"
    if roadmap.exists():
        russian += re.split(r"(?<=[.!?])\s+", " ".join(roadmap.read_text().split()))
    return english, [s for s in russian if len(s) > 20 and re.search("[а-яА-Я]", s)]


def _chunks(n: int, rng: random.Random) -> Iterator[str]:
    english, russian = _sentences()
    for _ in range(n):
        pool = russian if rng.random() < 0.3 else english
        text = ""
        while len(text) < CHUNK_CHARS:
            text += rng.choice(pool) + " "
        yield text.strip()


def _vectors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((TOPICS, DIM)).astype(np.float32)
    topics = rng.integers(0, TOPICS, n)
    vectors = centres[topics] + 0.8 * rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), topics


class _Precomputed:
    """An embedder whose query vectors were made beforehand (so only retrieval is timed)."""

    model = "bench"

    def __init__(self) -> None:
        self.vectors: dict[str, list[float]] = {}

    async def embed(self, texts: list[str], *, kind: Literal["query", "document"] = "document") -> list[list[float]]:
        return [self.vectors[text] for text in texts]


async def _fill(url: str, n: int) -> tuple[int, list[str], _Precomputed, float]:
    """n chunks in 10 bases of one user, indexed with vectors; returns (user id, queries, embedder, seconds)."""
    from sqlalchemy import insert

    from rubin_app.knowledge.index import knowledge_index
    from rubin_app.knowledge.models import KnowledgeBase, KnowledgeChunk, KnowledgeFile
    from rubin_app.models import User
    from rubin_app.services.db import session_scope

    rng = random.Random(15)
    vectors, _ = _vectors(n, 15)
    texts = list(_chunks(n, rng))
    started = time.perf_counter()
    async with session_scope(url) as session:
        user = User(external_id="bench-retrieval")
        session.add(user)
        await session.flush()
        assert user.id is not None
        bases = [KnowledgeBase(owner_id=user.id, name=f"kb {i}", embedding_model="bench") for i in range(KBS)]
        session.add_all(bases)
        await session.flush()
        files = [KnowledgeFile(kb_id=kb.id, owner_id=user.id, filename=f"doc{i}.txt", sha256=f"{i:064x}",
                               status="ready") for i, kb in enumerate(bases)]  # fmt: skip
        session.add_all(files)
        await session.flush()
        user_id, placement = user.id, [(kb.id, f.id) for kb, f in zip(bases, files, strict=True)]
    index = knowledge_index(url)
    for start in range(0, n, 2000):
        rows = [{"id": i + 1, "file_id": placement[i % KBS][1], "kb_id": placement[i % KBS][0], "owner_id": user_id,
                 "ordinal": i, "text": texts[i], "heading": "", "start": 0, "end": len(texts[i]), "tokens": 250}
                for i in range(start, min(n, start + 2000))]  # fmt: skip
        async with session_scope(url) as session:
            await (await session.connection()).execute(insert(KnowledgeChunk), rows)
        chunks = [KnowledgeChunk(**row) for row in rows]
        await index.add(chunks, vectors[start : start + len(rows)].tolist())
        if start == 0 and not url.startswith("sqlite"):
            await _hnsw(url, build=False)  # bulk load first, then build the graph once (like a re-index)
    if not url.startswith("sqlite"):
        await _hnsw(url, build=True)
    embedder = _Precomputed()
    queries = []
    while len(queries) < 200:
        words = texts[rng.randrange(n)].split()
        at = rng.randrange(max(1, len(words) - 6))
        query = " ".join(words[at : at + rng.randint(3, 6)])
        if query in embedder.vectors:
            continue
        q = len(queries)
        target = vectors[rng.randrange(n)] + 0.3 * np.random.default_rng(q).standard_normal(DIM).astype(np.float32)
        embedder.vectors[query] = (target / np.linalg.norm(target)).tolist()
        queries.append(query)
    return user_id, queries, embedder, time.perf_counter() - started


async def _hnsw(url: str, *, build: bool) -> None:
    """Drop the HNSW index of the bench's vector table, or build it (with room for the graph in memory)."""
    from sqlalchemy import text

    from rubin_app.knowledge.index_postgres import _vec_ddl
    from rubin_app.services.db import get_engine

    async with get_engine(url).begin() as conn:
        if build:
            await conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
            await conn.execute(text(_vec_ddl(DIM)[1]))
        else:
            await conn.execute(text(f"DROP INDEX IF EXISTS ix_knowledge_vec_{DIM}_hnsw"))


async def _time(
    url: str, user_id: int, queries: list[str], embedder: _Precomputed, modes: tuple[str, ...]
) -> list[float]:
    from rubin_app.knowledge.index import knowledge_index
    from rubin_app.knowledge.retrieval import retrieve
    from rubin_app.services.db import session_scope

    index, times = knowledge_index(url), []
    for query in queries:
        started = time.perf_counter()
        async with session_scope(url, read_only=True) as session:
            await retrieve(session=session, index=index, user_id=user_id, query=query, kb_ids=None,
                           embedder=embedder, k=5, modes=modes, min_score=0)  # fmt: skip
        times.append((time.perf_counter() - started) * 1000)
    return times


async def _measure(url: str, n: int, count: int) -> tuple[dict[str, tuple[float, float]], float]:
    from rubin_app.knowledge.index import close_indexes
    from rubin_app.services.db import dispose_all

    user_id, queries, embedder, fill_seconds = await _fill(url, n)
    results = {}
    await _time(url, user_id, queries[:20], embedder, ("text", "vector"))  # warm caches
    for name, modes in [("text", ("text",)), ("vector", ("vector",)), ("hybrid", ("text", "vector"))]:
        cpu = time.process_time()
        times = await _time(url, user_id, queries[:count], embedder, modes)
        cpu_ms = (time.process_time() - cpu) * 1000 / count  # this process only (not a PostgreSQL server's)
        results[name] = (percentile(times, 50), percentile(times, 95), cpu_ms)
    await close_indexes()
    await dispose_all()
    return results, fill_seconds


def _database(backend: str, n: int, tmp: Path, pg: PgvectorServer | None, pg_url: str) -> str:
    from rubin_app.services.migrate import upgrade_head

    if backend == "sqlite":
        url = f"sqlite:///{tmp / f'bench-{n}.db'}"
    elif pg_url:
        url = pg_url
    else:
        assert pg is not None
        url = pg.database(f"bench_{n}")
    upgrade_head(url)
    return url.replace("sqlite://", "sqlite+aiosqlite://", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--postgres-url", default="", help="an EMPTY database (one size only); default: pgserver")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that `finally` stops the PostgreSQL server
    os.environ.update(LOCALAI_URL="http://127.0.0.1:9", LOG_LEVEL="WARNING")
    sizes, backends = [int(s) for s in args.sizes.split(",")], args.backends.split(",")
    pg = PgvectorServer(free_port()) if "postgres" in backends and not args.postgres_url else None
    rows: list[tuple[str, str, str, str, str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="rubin-bench-retrieval-") as tmp:
            for backend in backends:
                for n in sizes:
                    os.environ["DATA_DIR"] = str(Path(tmp) / "data")
                    url = _database(backend, n, Path(tmp), pg, args.postgres_url)
                    results, fill = asyncio.run(_measure(url, n, args.queries))
                    rows += _rows(backend, n, results, fill)
                    print(f"{backend} {n:,}: {results} (filled in {fill:.0f} s)", flush=True)
    finally:
        if pg is not None:
            pg.stop()
    load = os.getloadavg()[0]
    title = f"Retrieval latency: retrieve() k=5 over 10 bases, {args.queries} queries ({os.cpu_count()} cores, load {load:.1f})"
    print_table(title, rows)


def _rows(backend: str, n: int, results: dict[str, Any], fill: float) -> list[tuple[str, str, str, str, str]]:
    name = {"sqlite": "SQLite FTS5 + sqlite-vec", "postgres": "PostgreSQL 16 + pgvector"}[backend]
    (t50, t95, tc), (v50, v95, vc), (h50, h95, hc) = results["text"], results["vector"], results["hybrid"]
    target = "p50 <= 30 ms" if n >= 100_000 else "-"
    return [
        (f"{name}, {n:,} chunks: hybrid p50 / p95 (wall)", f"{h50:.1f} / {h95:.1f} ms",
         f"text {t50:.1f} / {t95:.1f}; vector {v50:.1f} / {v95:.1f} ms",
         f"x{h50 / max(t50 + v50, 1e-9):.2f} of text + vector p50", target),
        (f"{name}, {n:,} chunks: CPU per query (app process)", f"hybrid {hc:.1f} ms",
         f"text {tc:.1f}; vector {vc:.1f} ms", f"x{hc / max(tc + vc, 1e-9):.2f} of text + vector", "-"),
        (f"{name}, {n:,} chunks: indexing" + (" (bulk, then HNSW build)" if backend == "postgres" else ""),
         f"{n / fill:,.0f} chunks/s", "-", "-", "-"),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
