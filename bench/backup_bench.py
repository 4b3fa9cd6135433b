"""Backups (issue #14): what an online backup costs, against baselines measured in the same run.

One SQLite database of sealed chats (default 40,000 messages, 200 users), then:
  (a) a backup (consistent copy + gzip + AES-256-GCM chunks + into a folder) vs the bare sqlite3 backup API
      copy of the same database (the consistency floor: what any online SQLite backup must do);
  (b) a restore (decrypt and verify every chunk + checksums + put in place + migrate) vs copying the file;
  (c) a writer's insert latency (one message per transaction) idle vs while backups run back to back — what
      users feel while a backup runs;
  (d) with --postgres-url (an empty PostgreSQL database): the same data, our backup vs a bare `pg_dump -Fc`.
Usage: scripts/bench.sh backup [--messages 40000] [--seconds 4] [--postgres-url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import percentile, print_table  # noqa: E402

KEYS = {  # one set of keys for the whole run: the restored instance must hold the source's keys
    "BACKUP_KEY": base64.b64encode(os.urandom(32)).decode(),
    "SECRET_KEY": os.urandom(24).hex(),
    "ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
}


def _env(tmp: Path, url: str, data: Path) -> Any:
    os.environ.update(LOCALAI_URL="http://127.0.0.1:9", DATA_DIR=str(data), DATABASE_URL=url, LOG_LEVEL="WARNING",
                      **KEYS)  # fmt: skip
    from rubin_app import config
    from rubin_app.vault.service import reset_vault

    config.get_settings.cache_clear()
    reset_vault()
    return config.get_settings()


async def _fill(users: int, messages: int) -> int:
    from rubin_app.models import Conversation, Message, MessageRole, User
    from rubin_app.services.db import session_scope
    from rubin_app.vault.service import get_vault

    per_user = messages // users
    for index in range(users):
        async with session_scope() as session:
            user = User(external_id=f"bench-{index}", email=f"u{index}@example.com", display_name=f"User {index}")
            session.add(user)
            await session.flush()
            assert user.id is not None
            await get_vault().prime(session, user.id)  # sealed by the flush hook with the user's data key
            chat = Conversation(user_id=user.id, model="m", title="Bench chat")
            session.add(chat)
            await session.flush()
            session.add_all(
                Message(user_id=user.id, conversation_id=chat.id, content=f"Message {n}: " + "слова и words " * 20,
                        role=MessageRole.user if n % 2 == 0 else MessageRole.assistant)
                for n in range(per_user)
            )  # fmt: skip
    return users * per_user


async def _writer_latency(seconds: float, user_id: int, chat_id: str) -> list[float]:
    from rubin_app.models import MessageRole
    from rubin_app.services import chats
    from rubin_app.services.db import session_scope

    lat: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        started = time.perf_counter()
        async with session_scope() as session:
            await chats.create_message(session=session, user_id=user_id, conversation_id=chat_id,
                                       role=MessageRole.user, content="during the backup")  # fmt: skip
        lat.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.002)
    return lat


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def _baseline_sqlite(src: Path, dest: Path) -> None:
    a, b = sqlite3.connect(f"file:{src}?mode=ro", uri=True), sqlite3.connect(dest)
    a.backup(b, pages=-1)
    a.close()
    b.close()


async def _first_chat() -> tuple[int, str]:
    from sqlmodel import select

    from rubin_app.models import Conversation
    from rubin_app.services.db import session_scope

    async with session_scope(read_only=True) as session:
        chat = (await session.exec(select(Conversation).limit(1))).one()
    return chat.user_id, chat.id


async def _online(settings: Any, tmp: Path, seconds: float) -> tuple[list[float], list[float], int]:
    from rubin_app.backup import service

    user_id, chat_id = await _first_chat()
    idle = await _writer_latency(seconds, user_id, chat_id)
    stop, made = threading.Event(), [0]

    def loop() -> None:
        while not stop.is_set():
            service.make_backup(settings, target=str(tmp / "online"))
            made[0] += 1

    thread = threading.Thread(target=loop)
    thread.start()
    busy = await _writer_latency(seconds, user_id, chat_id)
    stop.set()
    thread.join()
    return idle, busy, made[0]


def _sqlite_rows(settings: Any, tmp: Path, seconds: float) -> list[tuple[str, str, str, str, str]]:
    from rubin_app.backup import restore, service
    from rubin_app.backup.database import sqlite_path

    db = sqlite_path(settings.sync_database_url)
    size_mb = db.stat().st_size / 1e6
    base_s, _ = _timed(_baseline_sqlite, db, tmp / "copy.db")
    ours_s, made = _timed(service.make_backup, settings, target=str(tmp / "backups"))
    copy_s, _ = _timed(shutil.copyfile, tmp / "copy.db", tmp / "copy2.db")
    target = _env(tmp, f"sqlite:///{tmp / 'restored.db'}", tmp / "restored-data")
    back_s, _ = _timed(restore.restore, target, str(tmp / "backups" / made.entry.name))
    idle, busy, count = asyncio.run(_online(settings_again(settings), tmp, seconds))
    p50i, p99i, p50b, p99b = (percentile(idle, 50), percentile(idle, 99), percentile(busy, 50), percentile(busy, 99))
    return [
        ("database (SQLite)", f"{size_mb:.1f} MB", "", "", ""),
        ("backup: copy + gzip + encrypt + store", f"{ours_s:.2f} s ({size_mb / ours_s:.0f} MB/s)",
         f"{base_s:.2f} s (bare backup API copy)", f"x{ours_s / base_s:.1f}", "online, consistent"),
        ("backup file size", f"{made.entry.size / 1e6:.1f} MB", f"{size_mb:.1f} MB (database)",
         f"x{made.entry.size / 1e6 / size_mb:.2f}", ""),
        ("restore: decrypt + verify + put in place + migrate", f"{back_s:.2f} s", f"{copy_s:.2f} s (file copy)",
         f"x{back_s / copy_s:.0f}", ""),
        ("writer insert p50 during backups", f"{p50b:.1f} ms", f"{p50i:.1f} ms (idle)", f"x{p50b / p50i:.1f}",
         f"{count} backups ran meanwhile"),
        ("writer insert p99 during backups", f"{p99b:.1f} ms", f"{p99i:.1f} ms (idle)", f"x{p99b / p99i:.1f}",
         "no write blocked"),
    ]  # fmt: skip


def settings_again(settings: Any) -> Any:
    """Point the process at the benchmark's source instance again (restore switched it to the target)."""
    from rubin_app import config
    from rubin_app.vault.service import reset_vault

    os.environ.update(DATABASE_URL=settings.database_url, DATA_DIR=str(settings.data_dir))
    config.get_settings.cache_clear()
    reset_vault()
    return config.get_settings()


def _postgres_rows(pg_url: str, tmp: Path, messages: int, users: int) -> list[tuple[str, str, str, str, str]]:
    from rubin_app.backup import service
    from rubin_app.backup.database import _libpq
    from rubin_app.services.db import dispose_all
    from rubin_app.services.migrate import upgrade_head

    settings = _env(tmp, pg_url, tmp / "pg-data")
    upgrade_head()
    asyncio.run(_fill_and_dispose(users, messages, dispose_all))
    conninfo, env = _libpq(settings.sync_database_url)
    base_s, _ = _timed(subprocess.run, ["pg_dump", "-Fc", f"--file={tmp / 'bare.pgdump'}", f"--dbname={conninfo}"],
                       env=env, check=True)  # fmt: skip
    ours_s, made = _timed(service.make_backup, settings, target=str(tmp / "pg-backups"))
    return [
        ("backup (PostgreSQL): snapshot + pg_dump + encrypt", f"{ours_s:.2f} s", f"{base_s:.2f} s (bare pg_dump -Fc)",
         f"x{ours_s / base_s:.2f}", "online, consistent"),
        ("backup file size (PostgreSQL)", f"{made.entry.size / 1e6:.1f} MB",
         f"{(tmp / 'bare.pgdump').stat().st_size / 1e6:.1f} MB (bare dump)", "", ""),
    ]  # fmt: skip


async def _fill_and_dispose(users: int, messages: int, dispose: Any) -> None:
    await _fill(users, messages)
    await dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=4.0, help="writer measurement per phase")
    parser.add_argument("--postgres-url", default="", help="an empty PostgreSQL database (optional)")
    args = parser.parse_args()
    from rubin_app.services.db import dispose_all
    from rubin_app.services.migrate import upgrade_head

    with tempfile.TemporaryDirectory(prefix="rubin-backup-bench-") as name:
        tmp = Path(name)
        settings = _env(tmp, f"sqlite:///{tmp / 'bench.db'}", tmp / "data")
        upgrade_head()
        started = time.perf_counter()
        made = asyncio.run(_fill_and_count(args.users, args.messages, dispose_all))
        print(f"filled {made:,} sealed messages in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        rows = _sqlite_rows(settings, tmp, args.seconds)
        if args.postgres_url:
            rows += _postgres_rows(args.postgres_url, tmp, args.messages, args.users)
    print_table(f"Backups: {made:,} messages, {args.users} users (2 cores shared)", rows)


async def _fill_and_count(users: int, messages: int, dispose: Any) -> int:
    made = await _fill(users, messages)
    await dispose()
    return made


if __name__ == "__main__":
    main()
