"""Encryption at rest (issue #13): what sealing costs on the paths a user feels, and what a rotation costs.

One run, interleaved samples, the same SQLite database and the LocalAI stand-in, encryption on vs off
(ENCRYPTION_AT_REST=false stores new values in clear; the key machinery is the same):
  (a) time to first token through the service (send a message -> first streamed text): the question
      is sealed on its way into the database, the answer's periodic saves are sealed;
  (b) opening a 2,000-message chat: the page's query for the newest 50 and the whole history (every
      row opened);
  (c) key rotation for 100,000 messages (1,000 users x 100): re-wrapping every data key with a new
      key-encryption key, and, for comparison, sealing 100,000 clear-text messages (the upgrade pass,
      i.e. what re-encrypting every value would cost).
Usage: scripts/bench.sh encryption  (or: .venv/bin/python -m bench.encryption_bench [--samples 40])
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import print_table  # noqa: E402
from tests.fakes.localai_standin import StandIn, StandInConfig  # noqa: E402


def _env(tmp: Path, standin_url: str, encrypted: bool) -> None:
    os.environ.update(
        LOCALAI_URL=standin_url, DATA_DIR=str(tmp / "data"), DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}",
        TITLE_MODE="first_message", ENCRYPTION_AT_REST=str(encrypted).lower(), LOG_LEVEL="WARNING",
        RATE_LIMIT_RPM="0", RATE_LIMIT_IP_RPM="0", MAX_CONCURRENT_ANSWERS="0",
    )  # fmt: skip
    from rubin_app import config
    from rubin_app.services import runtime
    from rubin_app.vault.service import reset_vault

    config.get_settings.cache_clear()
    runtime._runtime = None
    reset_vault()


async def _user(email: str) -> int:
    from rubin_app.services.db import session_scope
    from tests.factories import make_user

    async with session_scope() as s:
        user = await make_user(s, external_id=email)
    assert user.id is not None
    return user.id


async def _first_token(rt: Any, user_id: int, model: str) -> float:
    from rubin_app.services import chat_flow

    t0 = time.perf_counter()
    started = await chat_flow.send_message(
        rt, user_id=user_id, conversation_id=None, text="How far is the Moon?", model=model
    )
    await asyncio.wait_for(started.run.wait_first_output(), 10)
    ttft = (time.perf_counter() - t0) * 1000
    await started.run.wait_done(timeout=10)
    return ttft


async def _long_chat(user_id: int, n: int) -> str:
    from rubin_app.models import MessageRole
    from rubin_app.services import chats
    from rubin_app.services.db import session_scope

    async with session_scope() as s:
        conv = await chats.create_conversation(session=s, user_id=user_id, model="m", title="long")
        for i in range(n):
            role = MessageRole.user if i % 2 == 0 else MessageRole.assistant
            text = f"Message {i}: " + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 6
            await chats.create_message(session=s, user_id=user_id, conversation_id=conv.id, role=role, content=text)
    return conv.id


async def _open(user_id: int, conversation_id: str, limit: int | None) -> float:
    from rubin_app.services import chats
    from rubin_app.services.db import session_scope

    t0 = time.perf_counter()
    async with session_scope(read_only=True) as s:
        rows = await chats.list_messages(session=s, user_id=user_id, conversation_id=conversation_id, limit=limit)
        assert rows and not rows[-1].content.startswith("$rv1$")
    return (time.perf_counter() - t0) * 1000


async def _measure(mode: bool, tmp: Path, standin: StandIn, samples: int) -> dict[str, list[float]]:
    _env(tmp, standin.url, mode)
    from rubin_app.config import get_settings
    from rubin_app.services.db import dispose_all
    from rubin_app.services.migrate import upgrade_head
    from rubin_app.services.runtime import Runtime

    upgrade_head()
    rt = Runtime(get_settings())
    user_id = await _user(f"bench-{mode}@example.com")
    model = "standin-model"
    chat = await _long_chat(user_id, 2000)
    out: dict[str, list[float]] = {"ttft": [], "page": [], "whole": []}
    for _ in range(3):  # warm
        await _first_token(rt, user_id, model)
    for _ in range(samples):
        out["ttft"].append(await _first_token(rt, user_id, model))
        out["page"].append(await _open(user_id, chat, 50))
        out["whole"].append(await _open(user_id, chat, None))
    await rt.generation.shutdown()
    await rt.usage.close()
    await rt.client.aclose()
    await dispose_all()
    return out


async def _rotation(tmp: Path, standin: StandIn, users: int, per_user: int) -> tuple[float, float]:
    """(seconds to re-wrap every data key, seconds to seal users*per_user clear messages)."""
    _env(tmp, standin.url, True)
    from sqlalchemy import text as sql

    from rubin_app.services.db import dispose_all, session_scope
    from rubin_app.services.migrate import upgrade_head
    from rubin_app.vault import cli, startup

    upgrade_head()
    ids = [await _user(f"r{i}@example.com") for i in range(users)]
    async with session_scope() as s:  # clear rows, as an earlier version wrote them (fast bulk insert)
        conv = "INSERT INTO conversations (id, user_id, title, model, title_is_auto, created_at, updated_at) " \
               "VALUES (:id, :u, 'clear title', 'm', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"  # fmt: skip
        msg = "INSERT INTO messages (conversation_id, user_id, role, content, reasoning, model, status, error, " \
              "error_detail, created_at, updated_at) VALUES (:c, :u, 'user', :t, '', 'm', 'complete', '', '', " \
              "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"  # fmt: skip
        for u in ids:
            await s.exec(sql(conv), params={"id": f"c{u}", "u": u})  # type: ignore[call-overload]
            await s.exec(
                sql(msg), params=[{"c": f"c{u}", "u": u, "t": f"message {k} of {u} " * 8} for k in range(per_user)]
            )  # type: ignore[call-overload]
    t0 = time.perf_counter()
    await startup.seal_legacy()
    seal_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    await cli.rotate(argparse.Namespace(rewrap_only=False, batch=500))
    rotate_s = time.perf_counter() - t0
    await dispose_all()
    return rotate_s, seal_s


def _p50(values: list[float]) -> float:
    return statistics.median(values)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=100)
    args = parser.parse_args()
    standin = StandIn(StandInConfig(token_rate=200, tokens=20)).start()
    try:
        results: dict[bool, dict[str, list[float]]] = {True: {}, False: {}}
        with tempfile.TemporaryDirectory() as on_dir, tempfile.TemporaryDirectory() as off_dir:
            for round_ in range(2):  # interleaved: off, on, off, on
                for mode, d in ((False, off_dir), (True, on_dir)):
                    got = await _measure(mode, Path(d) / str(round_), standin, args.samples // 2)
                    for k, v in got.items():
                        results[mode].setdefault(k, []).extend(v)
        rows = []
        for key, label in (("ttft", "time to first token (service)"), ("page", "open 2,000-message chat: newest 50"),
                           ("whole", "read all 2,000 messages")):  # fmt: skip
            on, off = _p50(results[True][key]), _p50(results[False][key])
            rows.append((label, f"{on:.2f} ms", f"{off:.2f} ms", f"{(on / off - 1) * 100:+.1f} %", "< 5 %"))
        print_table("Encryption at rest: p50, encryption on (Rubin) vs off (baseline)", rows)
        with tempfile.TemporaryDirectory() as rot_dir:
            rotate_s, seal_s = await _rotation(Path(rot_dir), standin, args.users, args.per_user)
        total = args.users * args.per_user
        print_table(f"Key rotation, {args.users:,} users x {args.per_user} messages = {total:,} messages", [
            ("re-wrap every data key (encryption rotate)", f"{rotate_s:.2f} s", f"{args.users / rotate_s:,.0f} keys/s",
             "messages untouched", "online"),
            ("seal every message (upgrade pass = re-encrypting all)", f"{seal_s:.2f} s",
             f"{total / seal_s:,.0f} msg/s", f"{seal_s * 100_000 / total:.1f} s per 100k", "online"),
        ])  # fmt: skip
    finally:
        standin.stop()


if __name__ == "__main__":
    asyncio.run(main())
