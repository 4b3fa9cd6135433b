"""Operator commands: `python -m rubin_app keys create|list|revoke` (API keys from the command line),
`python -m rubin_app encryption status|rotate|retire` (vault/cli.py), and
`python -m rubin_app retention run` (delete what is past its retention now).

python -m rubin_app keys create --email EMAIL --name NAME [--scopes chat,conversations:read]
                                [--expires-days N] [--rpm N] [--tokens-per-day N]   (prints the key once)
python -m rubin_app keys list [--email EMAIL]
python -m rubin_app keys revoke KEY_ID
python -m rubin_app retention run            (prints what it deleted; waits for no running worker's run)
python -m rubin_app migrate                  (apply the database migrations and exit: a deploy's migration job)
python -m rubin_app backup [--to DEST] | backup list [DEST] | backup new-key | restore SOURCE   (backup/cli.py)
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlmodel import select

from rubin_app.accounts import api_keys
from rubin_app.backup import cli as backup_cli
from rubin_app.config import get_settings
from rubin_app.core import tls
from rubin_app.models import User
from rubin_app.services.bus import Bus
from rubin_app.services.chats import InputError
from rubin_app.services.db import dispose_all, session_scope
from rubin_app.services.migrate import upgrade_head
from rubin_app.services.redis_store import RedisStore
from rubin_app.services.retention_job import Busy, RetentionJob
from rubin_app.vault import cli as vault_cli


async def _user_id(email: str) -> int:
    async with session_scope(read_only=True) as session:
        user = (await session.exec(select(User).where(User.email == email.strip().lower()))).first()
    if user is None or user.id is None:
        raise SystemExit(f"no user with the email {email!r}")
    return user.id


async def _create(args: argparse.Namespace) -> None:
    user_id = await _user_id(args.email)
    async with session_scope() as session:
        row, plain = await api_keys.create_key(
            session=session, user_id=user_id, name=args.name, scopes=args.scopes, expires_days=args.expires_days,
            requests_per_minute=args.rpm, tokens_per_day=args.tokens_per_day, actor_id=user_id, ip="cli",
        )  # fmt: skip
    print(plain)
    print(f"key {row.id} for {args.email}: scopes {row.scopes}; shown once, store it now", file=sys.stderr)


async def _list(args: argparse.Namespace) -> None:
    async with session_scope(read_only=True) as session:
        if args.email:
            rows = [
                (k, args.email) for k in await api_keys.list_keys(session=session, user_id=await _user_id(args.email))
            ]
        else:
            rows = await api_keys.list_all_keys(session=session)
    print(f"{'id':>5}  {'prefix':<12} {'owner':<30} {'name':<24} {'scopes':<44} state")
    for key, email in rows:
        state = "revoked" if key.revoked_at else (f"expires {key.expires_at:%Y-%m-%d}" if key.expires_at else "active")
        print(f"{key.id:>5}  {key.prefix:<12} {email:<30} {key.name[:24]:<24} {key.scopes:<44} {state}")


async def _revoke(args: argparse.Namespace) -> None:
    async with session_scope() as session:
        key = await api_keys.revoke_key(session=session, key_id=args.key_id, user_id=None, actor_id=0, ip="cli")
        key_hash, owner = key.key_hash, key.user_id
    settings = get_settings()
    if settings.redis_url:  # running workers drop the key from their caches at once
        store = RedisStore(tls.redis_url(settings), timeout=settings.redis_timeout)
        reached = await Bus(store).publish("api_key_revoked", hash=key_hash)
        await store.close()
        print(f"revoked key {args.key_id} of user {owner}; {reached} workers told", file=sys.stderr)
    else:
        print(f"revoked key {args.key_id} of user {owner}; a running server refuses it within seconds", file=sys.stderr)


async def _retention_run(_args: argparse.Namespace) -> None:
    settings = get_settings()
    store = RedisStore(settings.redis_url, timeout=settings.redis_timeout) if settings.redis_url else None
    try:
        report = await RetentionJob(settings, store, session_scope).run_now()
    except Busy:
        raise SystemExit("error: a retention run is in progress on a worker; try again later") from None
    finally:
        if store is not None:
            await store.close()
    print(report.summary())


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the command."""
    parser = argparse.ArgumentParser(prog="python -m rubin_app", description="Rubin AI operator commands")
    groups = parser.add_subparsers(dest="group", required=True)
    keys = groups.add_parser("keys", help="API keys").add_subparsers(dest="command", required=True)
    create = keys.add_parser("create", help="create a key for a user and print it (once)")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", default="", help=f"comma-separated: {', '.join(api_keys.SCOPES)}")
    create.add_argument("--expires-days", type=float, default=None)
    create.add_argument("--rpm", type=int, default=None, help="the key's own requests per minute")
    create.add_argument("--tokens-per-day", type=int, default=None, help="the key's own daily tokens")
    listing = keys.add_parser("list", help="list keys (one user's, or everyone's)")
    listing.add_argument("--email", default="")
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", type=int)
    kept = groups.add_parser("retention", help="retention of chats, audit, usage and webhook deliveries")
    kept.add_subparsers(dest="command", required=True).add_parser("run", help="delete what is past its retention now")
    vault_cli.add_commands(groups)
    groups.add_parser("migrate", help="apply the database migrations now (whatever AUTO_MIGRATE says) and exit")
    backup_cli.add_commands(groups)
    args = parser.parse_args(argv)
    if args.group == "migrate":
        upgrade_head()
        print("database schema is at the newest migration", file=sys.stderr)
        return
    commands = {("keys", "create"): _create, ("keys", "list"): _list, ("keys", "revoke"): _revoke,
                ("retention", "run"): _retention_run}  # fmt: skip
    commands.update(backup_cli.COMMANDS)
    command = vault_cli.run if args.group == "encryption" else commands[(args.group, args.command)]

    async def run() -> None:
        try:
            await command(args)
        finally:
            await dispose_all()

    if get_settings().auto_migrate and args.group != "restore":  # restore checks the target, then migrates
        upgrade_head()
    try:
        asyncio.run(run())
    except InputError as exc:
        raise SystemExit(f"error: {exc.code} {exc.params or ''}".strip()) from None


if __name__ == "__main__":
    main()
