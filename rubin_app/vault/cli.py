"""`python -m rubin_app encryption status|rotate|retire`: the operator's key commands.

rotate   with the key file: add a new key-encryption key (current from now on) and re-wrap every data key
         with it; with ENCRYPTION_KEY / ENCRYPTION_KEY_COMMAND: first put the new key first (the old after it)
         and restart the workers, then run this to re-wrap. Online: users keep chatting.
retire   drop an old key from the key file once no data key needs it.
"""

from __future__ import annotations

import argparse
import base64
import sys

from sqlalchemy import func
from sqlmodel import select

from rubin_app.connections import sealing as connections
from rubin_app.services.db import session_scope
from rubin_app.vault.keyring import KeyringError, key_id, new_key_text, write_key_file
from rubin_app.vault.models import UserKey
from rubin_app.vault.service import get_vault, reset_vault


def add_commands(groups: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The `encryption` command group."""
    commands = groups.add_parser("encryption", help="encryption keys").add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="keys, and how many data keys each wraps")
    rotate = commands.add_parser("rotate", help="new key-encryption key (key file), re-wrap every data key")
    rotate.add_argument("--rewrap-only", action="store_true", help="do not add a key to the key file")
    rotate.add_argument("--batch", type=int, default=500)
    retire = commands.add_parser("retire", help="remove an old key from the key file when nothing needs it")
    retire.add_argument("kek_id")


async def _counts() -> dict[str, int]:
    async with session_scope(read_only=True) as session:
        rows = (await session.exec(select(UserKey.kek_id, func.count()).group_by(UserKey.kek_id))).all()
    return {kid: int(n) for kid, n in rows}


async def status(_args: argparse.Namespace) -> None:
    vault = get_vault()
    counts = await _counts()
    print(f"keys from {vault.keyring.source}; encryption at rest {'on' if vault.enabled else 'OFF'}")
    for index, kid in enumerate(vault.keyring.ids):
        print(f"  {kid}  {'current' if index == 0 else 'old    '}  wraps {counts.pop(kid, 0)} data keys")
    for kid, n in counts.items():
        print(f"  {kid}  MISSING  wraps {n} data keys that cannot be opened without it")


async def rotate(args: argparse.Namespace) -> None:
    vault = get_vault()
    path = vault.keyring.key_file
    if path is not None and not args.rewrap_only:
        lines = [new_key_text(), *(line for line in path.read_text().splitlines() if line and not line.startswith("#"))]
        write_key_file(path, lines)
        reset_vault()
        vault = get_vault()
        print(f"new key {vault.keyring.current_id} added to {path} (the old ones stay to decrypt)", file=sys.stderr)
    report = await vault.rotate(lambda **kw: session_scope(**kw), batch=args.batch)
    async with session_scope() as session:  # model connections' API keys (docs/connections.md)
        resealed = await connections.reseal_keys(session=session)
    print(
        f"re-wrapped {report.rewrapped} data keys with {vault.keyring.current_id} in {report.seconds:.2f} s "
        f"({report.already_current} already were) and {resealed} connection API keys; stored values unchanged"
    )


async def retire(args: argparse.Namespace) -> None:
    vault = get_vault()
    path = vault.keyring.key_file
    if path is None:
        raise SystemExit("retire works on the key file; with ENCRYPTION_KEY, remove the old key from the setting")
    if args.kek_id == vault.keyring.current_id:
        raise SystemExit(f"{args.kek_id} is the current key: rotate first")
    need = (await _counts()).get(args.kek_id, 0)
    async with session_scope(read_only=True) as session:
        need += await connections.sealed_by(session=session, kek_id=args.kek_id)
    if need:
        raise SystemExit(f"{need} data keys are still wrapped by {args.kek_id}: run `encryption rotate --rewrap-only`")
    keep = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    left = [line for line in keep if key_id(base64.b64decode(line)) != args.kek_id]
    if len(left) == len(keep):
        raise SystemExit(f"no key {args.kek_id} in {path}")
    write_key_file(path, left)
    print(f"removed key {args.kek_id} from {path}")


COMMANDS = {"status": status, "rotate": rotate, "retire": retire}


async def run(args: argparse.Namespace) -> None:
    """Run one encryption command; a key problem exits with its message."""
    try:
        await COMMANDS[args.command](args)
    except KeyringError as exc:
        raise SystemExit(f"error: {exc}") from None
