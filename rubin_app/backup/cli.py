"""`python -m rubin_app backup [--to DEST]`, `backup list [DEST]`, `backup new-key`, `restore SOURCE`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from rubin_app.backup import crypto, restore, service
from rubin_app.backup.database import DatabaseError
from rubin_app.backup.destinations import DestinationError
from rubin_app.config import get_settings


def add_commands(groups: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The `backup` and `restore` commands."""
    make = groups.add_parser("backup", help="make an encrypted backup now (or list them, or make a key)")
    make.add_argument("--to", default="", help="a folder or s3://bucket/prefix (default BACKUP_DESTINATION)")
    more = make.add_subparsers(dest="command", required=False)
    listing = more.add_parser("list", help="the backups at a destination")
    listing.add_argument("destination", nargs="?", default="")
    more.add_parser("new-key", help="print a new random BACKUP_KEY")
    back = groups.add_parser("restore", help="restore a backup into an EMPTY instance (verified first)")
    back.add_argument("source", help="a backup file, or s3://bucket/prefix/rubin-….rubinbak")
    back.set_defaults(command="run")


def _make(args: argparse.Namespace) -> None:
    made = service.make_backup(get_settings(), target=args.to or None)
    tables = made.manifest["tables"]
    print(f"{made.destination.rstrip('/')}/{made.entry.name}")
    print(
        f"backup made: {made.entry.size} bytes, {len(made.manifest['members']) - 1} files, "
        f"{tables.get('users', 0)} users, {tables.get('conversations', 0)} chats, "
        f"{tables.get('messages', 0)} messages (schema {made.manifest['database']['revision']})",
        file=sys.stderr,
    )


def _list(args: argparse.Namespace) -> None:
    dest, rows = service.list_backups(get_settings(), args.destination or None)
    print(f"backups in {dest.label}:")
    print(f"{'name':<48} {'size':>12}  {'made by':<10} key")
    for entry, state in rows:
        print(f"{entry.name:<48} {entry.size:>12}  {entry.made_by or '-':<10} {state}")
    if not rows:
        print("(none)")


def _restore(args: argparse.Namespace) -> None:
    done = restore.restore(get_settings(), args.source)
    t = done.tables
    print(
        f"restored {t.get('users', 0)} users, {t.get('conversations', 0)} chats, {t.get('messages', 0)} messages, "
        f"{done.files} files; schema {done.revision_from} -> {done.revision_to}"
    )


async def run(args: argparse.Namespace) -> None:
    """Run one backup command (blocking work in a thread); a refusal exits with its message."""
    if args.group == "backup" and args.command == "new-key":
        print(crypto.new_key_text())
        return
    command = _restore if args.group == "restore" else (_list if args.command == "list" else _make)
    try:
        await asyncio.to_thread(command, args)
    except service.RestoreRefused as exc:
        what = "nothing was changed" if args.group == "restore" else "no backup was made"
        raise SystemExit(f"error: {exc}. ({what})") from None
    except (DatabaseError, DestinationError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None


# (group, command) -> handler, for __main__'s table (`backup` alone makes a backup)
COMMANDS = {("backup", None): run, ("backup", "list"): run, ("backup", "new-key"): run, ("restore", "run"): run}
