"""Retrieval quality: recall@5 and MRR over the Debian documentation set, per mode and language, one table.

Modes: Rubin's full-text only, vectors only and hybrid (bench/retrieval_rubin.py), against baselines measured in
the same run on the same documents: BM25 over fixed 1,000-character chunks, and Open WebUI's default (vectors only,
the same embedder, fixed 1,000-character chunks, top 3). Also ingestion throughput (pages/s).
`scripts/bench.sh retrieval-quality [--baseline-only | --text-only] [--no-owui] [--packages A,B] [--json FILE]`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.retrieval_baseline import BM25, fixed_chunks
from bench.retrieval_docs import CHARS_PER_PAGE, DEFAULT_CACHE, SOURCES, documents, fetch
from bench.retrieval_set import QUESTIONS, Question, Score, load_questions, missing_passages, score
from bench.retrieval_text import document_text

Search = Callable[[str, int], Awaitable[list[str]]]
TARGET_RECALL = 0.90
OWUI = "Open WebUI default (vectors, 1,000-char chunks, top 3)"
BASELINE = "BM25 baseline (1,000-char chunks, no stemming)"
RUBIN_MODES = (  # name, retrieve() modes, relevance floor on
    ("Rubin full-text only", ("text",), True),
    ("Rubin vectors only", ("vector",), True),
    ("Rubin hybrid", ("text", "vector"), True),
    ("Rubin hybrid, no relevance floor", ("text", "vector"), False),
)


async def ask_all(questions: list[Question], search: Search, k: int) -> tuple[dict[str, list[str]], float]:
    """Every question through one retriever; the retrieved texts per question id and the median latency (ms)."""
    retrieved: dict[str, list[str]] = {}
    latencies: list[float] = []
    for q in questions:
        start = time.perf_counter()
        retrieved[q.id] = await search(q.question, k)
        latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    return retrieved, latencies[len(latencies) // 2] if latencies else 0.0


class VectorBaseline:
    """Open WebUI's default retrieval: fixed chunks, cosine similarity of the same embedder's vectors, top 3."""

    def __init__(self, texts: list[str], embedder: Any, top: int = 3) -> None:
        self.texts, self.embedder, self.top = texts, embedder, top
        self.matrix: Any = None

    async def build(self, batch: int = 256) -> None:
        """Embed every chunk (numpy matrix, rows L2-normalised by the embedder)."""
        import numpy as np

        vectors: list[list[float]] = []
        for at in range(0, len(self.texts), batch):
            vectors += await self.embedder.embed(self.texts[at : at + batch], kind="document")
        self.matrix = np.asarray(vectors, dtype=np.float32)

    async def search(self, query: str, k: int) -> list[str]:
        """The top `min(k, 3)` chunks by cosine similarity."""
        import numpy as np

        [vec] = await self.embedder.embed([query], kind="query")
        sims = self.matrix @ np.asarray(vec, dtype=np.float32)
        return [self.texts[i] for i in np.argsort(-sims)[: min(k, self.top)]]


async def run_rubin(
    args: argparse.Namespace, docs: list[Path], questions: list[Question], rows: list[dict[str, Any]], fixed: list[str]
) -> dict[str, Any]:
    """Ingest with Rubin's pipeline and ask every question in each mode; appends result rows, returns timings."""
    from bench.retrieval_rubin import EMBED_MODEL, RubinPipeline, embedding_server
    from rubin_app.llm.client import LLMClient
    from rubin_app.llm.embeddings import Embedder

    async with contextlib.AsyncExitStack() as stack:
        embedder = None
        if not args.text_only:
            url = await stack.enter_async_context(embedding_server())
            embedder = Embedder(LLMClient(url), EMBED_MODEL, batch_size=32)
            stack.push_async_callback(embedder.aclose)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="rubin-quality-"))
        pipeline = RubinPipeline(Path(tmp), embedder)
        stack.push_async_callback(pipeline.aclose)
        await pipeline.setup()
        timings = await pipeline.ingest(args.cache, docs)
        for name, modes, floor in RUBIN_MODES:
            if embedder is not None or modes == ("text",):
                search = functools.partial(pipeline.search, modes=modes, floor=floor)
                rows.append(await measure(name, questions, search, args.k))
        if embedder is not None and args.owui:
            owui = VectorBaseline(fixed, embedder)
            await owui.build()
            rows.append(await measure(OWUI, questions, owui.search, args.k))
    return {
        "pages": timings.pages, "chunks": timings.chunks, "documents": len(docs), "kinds": timings.per_kind,
        "extract_s": timings.extract_s, "embed_s": timings.embed_s, "index_s": timings.index_s,
        "pages_per_s": timings.pages / timings.total_s if timings.total_s else 0.0, "failed": timings.failed,
    }  # fmt: skip


async def measure(name: str, questions: list[Question], search: Search, k: int) -> dict[str, Any]:
    """One result row: scores per language and overall, median latency."""
    retrieved, p50 = await ask_all(questions, search, k)
    scores: dict[str, Score] = score(questions, retrieved, k=k)
    return {"mode": name, "p50_ms": p50, **{lang: vars(s) for lang, s in scores.items()}}


def print_table(rows: list[dict[str, Any]], k: int, baseline: str) -> None:
    """The quality table: recall@k and MRR per language, and recall against the BM25 baseline."""
    base = next(r for r in rows if r["mode"] == baseline)["all"]["recall"] or 1.0
    print(f"| mode | recall@{k} all | recall@{k} ru | recall@{k} en | MRR all | MRR ru | MRR en | vs BM25 | p50 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        groups = [r.get(g) for g in ("all", "ru", "en")]  # a language without questions shows "-"
        cells = [f"{g['recall']:.3f}" if g else "-" for g in groups] + [f"{g['mrr']:.3f}" if g else "-" for g in groups]
        print(f"| {r['mode']} | {' | '.join(cells)} | x{r['all']['recall'] / base:.2f} | {r['p50_ms']:.1f} |")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--baseline-only", action="store_true", help="BM25 only (no Rubin modules, no embedder)")
    parser.add_argument("--text-only", action="store_true", help="Rubin full-text only (no embedding server)")
    parser.add_argument("--no-owui", dest="owui", action="store_false", help="skip the Open WebUI-style baseline")
    parser.add_argument(
        "--packages", default=",".join(s.target for s in SOURCES),
        help="comma-separated subset of the document sets (a shorter run; its questions only)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def main() -> None:
    """Fetch, check, ingest, ask, print."""
    args = parse_args()
    cache = fetch(args.cache)
    packages = tuple(p.strip() for p in args.packages.split(",") if p.strip())
    questions = [q for q in load_questions(args.questions) if q.doc.split("/")[0] in packages]
    problems = missing_passages(questions, cache)
    if problems:
        sys.exit("passages not found in their documents:\n" + "\n".join(problems))
    docs = [d for d in documents(cache) if d.relative_to(cache).parts[0] in packages]
    texts = {d: document_text(d) for d in docs}
    fixed = [c for t in texts.values() for c in fixed_chunks(t)]
    pages = sum(len(t) for t in texts.values()) / CHARS_PER_PAGE
    print(f"{len(questions)} questions, {len(docs)} documents, {pages:,.0f} pages of {CHARS_PER_PAGE} characters")
    rows = [asyncio.run(measure(BASELINE, questions, BM25(fixed).search, args.k))]
    ingest: dict[str, Any] = {}
    if not args.baseline_only:
        ingest = asyncio.run(run_rubin(args, docs, questions, rows, fixed))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "ingestion": ingest}, indent=2, ensure_ascii=False))
    print_table(rows, args.k, BASELINE)
    if ingest:
        print(
            f"\ningestion: {ingest['documents']} documents, {ingest['pages']} pages, {ingest['chunks']} chunks; "
            f"extract+chunk {ingest['extract_s']:.1f} s, embed {ingest['embed_s']:.1f} s, index {ingest['index_s']:.1f} s"
            f" -> {ingest['pages_per_s']:.1f} pages/s"
        )
        for doc, error in sorted(ingest["failed"].items()):
            print(f"extraction failed: {doc}: {error}")
        hybrid = next((r for r in rows if r["mode"] == "Rubin hybrid"), None)
        if hybrid is not None:
            met = hybrid["all"]["recall"] >= TARGET_RECALL
            print(f"target hybrid recall@{args.k} >= {TARGET_RECALL}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
