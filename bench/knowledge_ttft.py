"""Time to first token with knowledge vs without (issue #15): the same chat service, the same user and stand-in, a
question asked with a 10,000-chunk knowledge base attached (hybrid retrieval: the question embedded by the bundled
embedding server, full-text + vector search, sources saved on the answer) vs the same question with nothing
attached (the baseline), interleaved.

The chunks are realistic sentences made from the repository's own docs; their vectors are the stand-in's hashed
vectors at the bundled model's 384 dimensions (what is timed is the query's embedding and the search, not the
ingestion). Target: retrieval adds <= 50 ms p50 at 10k chunks.
Usage: scripts/bench.sh knowledge-ttft [--chunks 10000] [--samples 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, print_table  # noqa: E402
from tests.fakes.localai_standin import StandIn, StandInConfig  # noqa: E402
from tests.fakes.standin_vectors import embedding_of  # noqa: E402

MODEL = "standin-model"
DIM = 384


def _sentences(count: int) -> list[str]:
    """`count` passages of ~60 words drawn from the repository's docs (a real vocabulary and word frequencies)."""
    words = re.findall(r"[A-Za-z][a-z]{2,}", " ".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))))
    rng = random.Random(15)
    return [" ".join(rng.choice(words) for _ in range(60)) + "." for _ in range(count)]


def _env(tmp: Path, standin_url: str, embed_port: int) -> None:
    os.environ.update(
        LOCALAI_URL=standin_url, DATA_DIR=str(tmp / "data"), DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}",
        TITLE_MODE="first_message", LOG_LEVEL="WARNING", EMBEDDING_PORT=str(embed_port),
        RATE_LIMIT_RPM="0", RATE_LIMIT_IP_RPM="0", MAX_CONCURRENT_ANSWERS="0",
    )  # fmt: skip
    from rubin_app import config

    config.get_settings.cache_clear()


async def _fill(rt: Any, user_id: int, chunks: int) -> int:
    """A base of `chunks` passages in one file, indexed (full-text and vectors)."""
    from rubin_app.knowledge.models import FileStatus, KnowledgeBase, KnowledgeChunk, KnowledgeFile
    from rubin_app.services.db import session_scope

    async with session_scope() as s:
        base = KnowledgeBase(owner_id=user_id, name="Docs", embedding_model="rubin-embed", embedding_dim=DIM)
        s.add(base)
        await s.flush()
        file = KnowledgeFile(kb_id=base.id, owner_id=user_id, filename="docs.md", sha256="0" * 64,
                             status=FileStatus.ready, progress=1.0, chunk_count=chunks)  # fmt: skip
        s.add(file)
        await s.flush()
        kb_id, file_id = base.id, file.id
    texts = _sentences(chunks)
    for start in range(0, chunks, 1000):
        async with session_scope() as s:
            rows = [
                KnowledgeChunk(file_id=file_id, kb_id=kb_id, owner_id=user_id, ordinal=i, text=t, heading="Docs")
                for i, t in enumerate(texts[start : start + 1000], start=start)
            ]
            s.add_all(rows)
            await s.flush()
        await rt.knowledge_index.add(rows, [embedding_of(r.text, DIM) for r in rows])
    assert kb_id is not None
    return kb_id


async def _first_token(rt: Any, user_id: int, question: str, knowledge: list[int]) -> float:
    from rubin_app.services import chat_flow

    t0 = time.perf_counter()
    started = await chat_flow.send_message(
        rt, user_id=user_id, conversation_id=None, text=question, model=MODEL, knowledge=knowledge
    )
    await asyncio.wait_for(started.run.wait_first_output(), 10)
    ttft = (time.perf_counter() - t0) * 1000
    await started.run.wait_done(timeout=10)
    return ttft


async def _run(args: argparse.Namespace, tmp: Path, standin: StandIn, embed_port: int) -> dict[str, list[float]]:
    _env(tmp, standin.url, embed_port)
    from rubin_app.config import get_settings
    from rubin_app.services.db import dispose_all, session_scope
    from rubin_app.services.migrate import upgrade_head
    from rubin_app.services.runtime import Runtime
    from tests.factories import make_user

    upgrade_head()
    rt = Runtime(get_settings())
    async with session_scope() as s:
        user = await make_user(s, external_id="bench@example.com")
    assert user.id is not None
    t0 = time.perf_counter()
    kb = await _fill(rt, user.id, args.chunks)
    print(f"indexed {args.chunks:,} chunks in {time.perf_counter() - t0:.1f} s", flush=True)
    questions = [f"How does the {w} setting change the {v} of an answer?" for w, v in
                 zip(["cache", "retention", "backup", "webhook", "quota"], ["speed", "size", "safety", "cost", "text"],
                     strict=True)]  # fmt: skip
    out: dict[str, list[float]] = {"without": [], "with": []}
    for i in range(3):  # warm both paths
        await _first_token(rt, user.id, questions[i], [])
        await _first_token(rt, user.id, questions[i], [kb])
    for i in range(args.samples):
        q = questions[i % len(questions)] + f" ({i})"
        out["without"].append(await _first_token(rt, user.id, q, []))
        out["with"].append(await _first_token(rt, user.id, q, [kb]))
    await rt.close()
    await dispose_all()
    return out


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


async def main() -> None:
    from rubin_app import embed_server

    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    standin = StandIn(StandInConfig(token_rate=200, tokens=20)).start()
    port = free_port()
    embedder = embed_server.start(port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            got = await _run(args, Path(tmp), standin, port)
    finally:
        embedder.terminate()
        standin.stop()
    with_, without = got["with"], got["without"]
    added = statistics.median(with_) - statistics.median(without)
    print_table(f"Time to first token with {args.chunks:,} chunks of knowledge vs none (service, p50 / p95)", [
        ("time to first token, p50", f"{statistics.median(with_):.1f} ms", f"{statistics.median(without):.1f} ms",
         f"+{added:.1f} ms", "<= +50 ms"),
        ("time to first token, p95", f"{_pct(with_, 95):.1f} ms", f"{_pct(without, 95):.1f} ms",
         f"+{_pct(with_, 95) - _pct(without, 95):.1f} ms", ""),
    ])  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
