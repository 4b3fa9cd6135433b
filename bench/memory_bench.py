"""Personalisation (issue #15): what the personal part of a chat's system prompt costs on the send path.

One run, interleaved samples, one SQLite database (migrated, encryption at rest on, as by default): the time to
build a chat's setup (`assistants.chat.chat_setup`: the assistant, custom instructions and the most relevant
memories within MEMORY_TOKEN_BUDGET) for a user with 0, 50 and 200 memories (MEMORY_MAX_ITEMS), by word overlap
and by embedding similarity (an in-process hashing embedder standing in for the embedding server, so the figure
is Rubin's own cost: reading and opening the rows, the vectors' JSON, the scoring), against the baseline of the
same read-only session reading one row (what any send already pays for a session).
Usage: scripts/bench.sh memory  (or: .venv/bin/python -m bench.memory_bench [--samples 200])
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import print_table  # noqa: E402

FACTS = ["Works as a {} nurse in Kazan", "Has a dog named {}", "Prefers short answers about {}", "Learns {} on weekends",
         "Любит {} и зелёный чай", "Drives a {} car to work", "Reads books about {} history"]  # fmt: skip
TOPICS = ["night", "Rex", "physics", "Spanish", "jazz", "red", "Roman", "chess", "sailing", "Go"]


class HashEmbedder:
    """Words hashed into 384 dimensions, L2-normalised (the bundled model's size), in process."""

    async def embed(self, texts: list[str], *, kind: Literal["query", "document"] = "document") -> list[list[float]]:
        out = []
        for text in texts:
            vector = [0.0] * 384
            for word in re.findall(r"\w+", text.casefold()):
                vector[int.from_bytes(hashlib.sha256(word.encode()).digest()[:2], "big") % 384] += 1.0
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            out.append([x / norm for x in vector])
        return out


def _env(tmp: Path) -> str:
    url = f"sqlite:///{tmp / 'bench.db'}"
    os.environ.update(DATA_DIR=str(tmp / "data"), DATABASE_URL=url, LOG_LEVEL="WARNING")
    from rubin_app import config
    from rubin_app.services.migrate import upgrade_head
    from rubin_app.vault.service import reset_vault

    config.get_settings.cache_clear()
    reset_vault()
    upgrade_head()
    return url


async def _user(memories: int) -> int:
    from rubin_app.assistants import io
    from rubin_app.assistants import service as assistants
    from rubin_app.memory import instructions
    from rubin_app.memory import service as memory
    from rubin_app.services.db import session_scope
    from tests.factories import make_user

    async with session_scope() as s:
        user = await make_user(s)
        assert user.id is not None
        await instructions.set_instructions(session=s, user_id=user.id, about="I teach maths.", style="Be brief.")
        spec = io.spec_of({"name": "Tutor", "base_model": "m", "system_prompt": "You are a patient tutor."})
        await assistants.create_assistant(session=s, user_id=user.id, spec=spec)
        for i in range(memories):
            text = FACTS[i % len(FACTS)].format(TOPICS[i % len(TOPICS)]) + f" (note {i})"
            await memory.add_memory(session=s, user_id=user.id, text=text, max_items=1000)
    return user.id


async def _timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000


async def run(samples: int) -> None:
    from rubin_app.assistants.chat import chat_setup
    from rubin_app.llm.types import Params
    from rubin_app.memory import instructions
    from rubin_app.services.db import session_scope

    users = {n: await _user(n) for n in (0, 50, 200)}
    embedder = HashEmbedder()

    def setup(user_id: int, with_embedder: bool) -> Callable[[], Awaitable[Any]]:
        async def call() -> Any:
            # Read-only by words (the send path's kind of session); writable with an embedder (embeddings it makes
            # are kept: after the warm-up there are none to make).
            async with session_scope(read_only=not with_embedder) as s:
                return await chat_setup(
                    session=s, user_id=user_id, model="asst:tutor", query="Which dog breed suits a night nurse?",
                    default_system="You are Rubin.", base_params=Params(), default_budget=3000,
                    embedder=embedder if with_embedder else None, memory_budget=400,
                )  # fmt: skip

        return call

    async def baseline() -> Any:
        async with session_scope(read_only=True) as s:
            return await instructions.get_instructions(session=s, user_id=users[0])

    cases: dict[str, Callable[[], Awaitable[Any]]] = {"baseline: one read in a session": baseline}
    for n, user_id in users.items():
        cases[f"chat_setup, {n} memories, by words"] = setup(user_id, False)
        if n:
            cases[f"chat_setup, {n} memories, by embeddings"] = setup(user_id, True)
    for fn in cases.values():  # warm-up (and the memories' embeddings made once, as in use)
        await fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(samples):
        for name, fn in cases.items():
            times[name].append(await _timed(fn))
    base = statistics.median(times["baseline: one read in a session"])
    rows = []
    for name, values in times.items():
        values.sort()
        p50, p95 = statistics.median(values), values[int(len(values) * 0.95) - 1]
        target = "" if name.startswith("baseline") else "p50 <= 50 ms"
        rows.append((name, f"p50 {p50:.2f} ms, p95 {p95:.2f} ms", f"{base:.2f} ms", f"x{p50 / base:.1f}", target))
    print_table(f"Personal context of a chat (SQLite, encryption at rest on, {samples} samples each)", rows)


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _env(Path(tmp))
        asyncio.run(run(args.samples))


if __name__ == "__main__":
    main()
