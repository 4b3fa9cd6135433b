"""Throughput of the bundled embedding model (all-MiniLM-L6-v2 in numpy), in process and through its server.

One run on this machine:
  (a) chunk-sized texts (~1,400 bytes, what a 350-token chunk is; the model reads their first 256 word pieces) per
      second in process, by forward-pass size (word pieces per pass: 256 = one chunk at a time, the baseline), and
      short texts (memories, queries) one at a time vs batched;
  (b) the same through `python -m rubin_app.embed_server` with Rubin's Embedder (EMBEDDING_BATCH texts per request):
      what ingestion gets, vs (a)'s best;
  (c) one short query's embedding over HTTP, p50/p95: what retrieval adds to a question;
  (d) the server's memory (RSS) after the run.
The texts are English prose from the standard library's own documentation (module docstrings), cut into chunks.
Usage: scripts/bench.sh embedding  (or: .venv/bin/python -m bench.embedding_bench [--chunks 128])
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the server runs (rubin_app/embed_server.py)

import argparse
import ast
import asyncio
import statistics
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, print_table  # noqa: E402
from rubin_app.embed_model import MiniLM  # noqa: E402
from rubin_app.embed_server import MODEL_ID  # noqa: E402
from rubin_app.embed_server import start as start_server  # noqa: E402
from rubin_app.llm.client import LLMClient  # noqa: E402
from rubin_app.llm.embeddings import Embedder  # noqa: E402

CHUNK_BYTES = 1400  # rubin_app.services.context.estimate_tokens: ~4 bytes a token, so ~350 tokens


def corpus_chunks(count: int) -> list[str]:
    """`count` chunks of ~CHUNK_BYTES of English prose: the standard library's docstrings (read with ast, nothing is
    imported), cut at words."""
    words: list[str] = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                words.extend((ast.get_docstring(node) or "").split())
        if len(words) * 7 > count * CHUNK_BYTES * 1.2:
            break
    chunks, current, size = [], [], 0
    for word in words:
        current.append(word)
        size += len(word) + 1
        if size >= CHUNK_BYTES:
            chunks.append(" ".join(current))
            current, size = [], 0
    return (chunks * (count // max(1, len(chunks)) + 1))[:count]


def in_process(model: MiniLM, texts: list[str], batch_tokens: int, batch_size: int = 64) -> float:
    """Texts per second, in process, at most `batch_tokens` (padded) word pieces per forward pass."""
    model.encode(texts[:4], batch_tokens=batch_tokens, batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    model.encode(texts, batch_tokens=batch_tokens, batch_size=batch_size)
    return len(texts) / (time.perf_counter() - start)


async def over_http(url: str, chunks: list[str], request_batch: int, queries: int) -> tuple[float, list[float]]:
    """Texts per second through the server with the Embedder, and single-query latencies (ms)."""
    embedder = Embedder(LLMClient(url), MODEL_ID, batch_size=request_batch, owns_client=True)
    await embedder.embed(chunks[:4])  # warm-up, connection open
    start = time.perf_counter()
    await embedder.embed(chunks)
    rate = len(chunks) / (time.perf_counter() - start)
    latencies = []
    for i in range(queries):
        t = time.perf_counter()
        await embedder.embed([f"how do I configure the {i}th option of the parser?"], kind="query")
        latencies.append((time.perf_counter() - t) * 1000)
    await embedder.aclose()
    return rate, latencies


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=128, help="chunk-sized texts per measurement")
    parser.add_argument("--batch-tokens", default="256,512,1024,2048,8192", help="word pieces per forward pass")
    parser.add_argument("--request-batch", type=int, default=32, help="texts per HTTP request (EMBEDDING_BATCH)")
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    chunks = corpus_chunks(args.chunks)
    model = MiniLM()
    pieces = statistics.mean(model.count_tokens(chunks))
    rates: dict[int, float] = {}
    for budget in (int(x) for x in args.batch_tokens.split(",")):
        rates[budget] = in_process(model, chunks, budget)
        print(f"[bench] chunks, {budget} pieces a pass: {rates[budget]:.1f} texts/s", file=sys.stderr, flush=True)
    base = rates[min(rates)]
    rows = [(f"chunks in process, {b} pieces a pass (~{max(1, b // 256)} chunks)", f"{r:.2f} texts/s",
             f"{base:.2f} texts/s (one a pass)", f"x{r / base:.2f}", "-") for b, r in rates.items()]  # fmt: skip
    short = [" ".join(c.split()[:14]) for c in chunks]  # memory / query sized: ~20 word pieces
    one, batched = in_process(model, short, 1, 1), in_process(model, short, 512)
    rows.append(("short texts (~20 pieces), 512 pieces a pass", f"{batched:.1f} texts/s", f"{one:.1f} texts/s "
                 "(one a pass)", f"x{batched / one:.2f}", "-"))  # fmt: skip
    del model
    port = free_port()
    proc = start_server(port)
    try:
        rate, latencies = asyncio.run(over_http(f"http://127.0.0.1:{port}", chunks, args.request_batch, args.queries))
        memory = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    best = max(rates.values())
    lat = sorted(latencies)
    rows += [
        (f"server + Embedder, {args.request_batch} texts/request", f"{rate:.1f} texts/s", f"{best:.1f} texts/s "
         "(best in process)", f"x{rate / best:.2f}", "-"),
        ("one query over HTTP, p50", f"{statistics.median(lat):.1f} ms", "-", "-", "<= 50 ms (issue: TTFT)"),
        ("one query over HTTP, p95", f"{lat[int(len(lat) * 0.95) - 1]:.1f} ms", "-", "-", "-"),
        ("server memory (RSS) after the run", f"{memory:.0f} MB", "-", "-", "-"),
    ]  # fmt: skip
    title = (f"Bundled embeddings (all-MiniLM-L6-v2, numpy): {len(chunks)} chunks of ~{CHUNK_BYTES} bytes "
             f"(~{pieces:.0f} word pieces read)")  # fmt: skip
    print_table(title, rows)


if __name__ == "__main__":
    main()
