"""Bad backups and bad targets are refused with a clear message, and nothing is changed: a file cut short,
damaged or reordered; a newer format or schema; another BACKUP_KEY; an ENCRYPTION_KEY or SECRET_KEY that does
not match the backup's data; a target that is not empty; a file of DATA_DIR in the way; no pg_dump."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from rubin_app.backup import crypto, restore, service
from rubin_app.backup.database import DatabaseError
from rubin_app.config import PROJECT_DIR, Settings
from rubin_app.services import accounts
from rubin_app.services.db import dispose_all, session_scope
from rubin_app.services.migrate import upgrade_head
from rubin_app.vault.keyring import new_key_text
from tests.conftest import async_url
from tests.services.backup_support import Keys, populate, table_counts, tree_digest, use_instance

Env = Callable[..., None]


async def _backup(app_env: Env, url: str, tmp_path: Path, keys: Keys, *, big: bool = False) -> Path:
    settings = use_instance(app_env, url=async_url(url), data_dir=tmp_path / "src", keys=keys)
    await populate(settings)
    if big:  # random bytes do not compress: the archive spans several 1 MiB chunks
        (settings.data_dir / "knowledge").mkdir(parents=True)
        (settings.data_dir / "knowledge" / "big.bin").write_bytes(os.urandom(2_500_000))
    made = await asyncio.to_thread(service.make_backup, settings, target=str(tmp_path / "backups"))
    await dispose_all()
    return tmp_path / "backups" / made.entry.name


@pytest.fixture
async def sqlite_backup(app_env: Env, empty_database: Callable[[str], str], tmp_path: Path) -> tuple[Keys, Path]:
    """A backup of a populated SQLite instance that spans several chunks, and its keys."""
    url = empty_database("sqlite")
    upgrade_head(url)
    keys = Keys()
    return keys, await _backup(app_env, url, tmp_path, keys, big=True)


def _target(app_env: Env, empty_database: Callable[[str], str], tmp_path: Path, keys: Keys, kind: str = "sqlite",
            **extra: object) -> Settings:  # fmt: skip
    """A new instance: a migrated, empty database and an empty DATA_DIR."""
    url = empty_database(kind)
    upgrade_head(url)
    return use_instance(app_env, url=async_url(url), data_dir=tmp_path / "dst", keys=keys, **extra)


async def _refused(target: Settings, source: Path | str, match: str) -> str:
    """Restore is refused with `match` in the message, and the target's database and DATA_DIR are unchanged."""
    watched = [target.data_dir, *([Path(target.sync_database_url.split("///")[1]).parent]
                                  if target.sync_database_url.startswith("sqlite") else [])]  # fmt: skip
    counts = await table_counts()  # first: opening SQLite switches it to WAL once
    files = tree_digest(*watched)
    with pytest.raises(service.RestoreRefused, match=match) as caught:
        await asyncio.to_thread(restore.restore, target, str(source))
    assert tree_digest(*watched) == files
    assert await table_counts() == counts
    return str(caught.value)


def _records(path: Path) -> tuple[bytes, list[bytes]]:
    raw = path.read_bytes()
    header, at, records = raw[: crypto.HEADER_BYTES], crypto.HEADER_BYTES, []
    while at < len(raw):
        (length,) = struct.unpack(">I", raw[at : at + 4])
        records.append(raw[at : at + 4 + length])
        at += 4 + length
    return header, records


async def test_cut_short_damaged_or_reordered_files_are_refused(
    sqlite_backup: tuple[Keys, Path], app_env: Env, empty_database: Callable[[str], str], tmp_path: Path
) -> None:
    keys, good = sqlite_backup
    target = _target(app_env, empty_database, tmp_path, keys)
    header, records = _records(good)
    assert len(records) >= 3
    bad = tmp_path / "bad.rubinbak"
    cases = [
        (good.read_bytes()[:-1000], "cut short"),  # inside the last chunk
        (header + b"".join(records[:-1]), "cut short .truncated after"),  # the final chunk dropped whole
        (header + records[1] + records[0] + b"".join(records[2:]), "damaged or reordered at chunk 0"),
        (header + records[0] + records[0] + b"".join(records[1:]), "damaged or reordered at chunk 1"),  # replayed
        (b"PK\x03\x04 a zip file, not a backup" * 3, "not a Rubin backup file"),
    ]
    flipped = bytearray(good.read_bytes())
    flipped[len(flipped) // 2] ^= 0x01
    cases.append((bytes(flipped), "damaged"))
    for data, match in cases:
        bad.write_bytes(data)
        await _refused(target, bad, match)
    bad.write_bytes(good.read_bytes()[: crypto.HEADER_BYTES - 3])
    await _refused(target, bad, "not a Rubin backup")


async def test_another_backup_key_and_a_newer_format_are_refused_before_decrypting(
    sqlite_backup: tuple[Keys, Path], app_env: Env, empty_database: Callable[[str], str], tmp_path: Path
) -> None:
    keys, good = sqlite_backup
    other = Keys(encryption=keys.encryption, secret=keys.secret)  # only BACKUP_KEY differs
    target = _target(app_env, empty_database, tmp_path, other)
    message = await _refused(target, good, "encrypted with another backup key")
    assert other.backup not in message and keys.backup not in message
    target = _target(app_env, empty_database, tmp_path / "2", keys)
    newer = bytearray(good.read_bytes())
    newer[8] = crypto.FORMAT_VERSION + 1
    (tmp_path / "newer.rubinbak").write_bytes(bytes(newer))
    await _refused(target, tmp_path / "newer.rubinbak", r"made by a newer Rubin \(backup format 2")
    target = _target(app_env, empty_database, tmp_path / "3", keys, backup_key=None)
    await _refused(target, good, "BACKUP_KEY is not set")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_newer_schema_and_a_non_empty_target_are_refused(
    kind: str, app_env: Env, empty_database: Callable[[str], str], tmp_path: Path
) -> None:
    keys = Keys()
    url = empty_database(kind)
    upgrade_head(url)
    good = await _backup(app_env, url, tmp_path / "a", keys)
    engine = create_engine(url)
    with engine.begin() as conn:  # as if a newer Rubin had migrated it
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff99990000'"))
    engine.dispose()
    settings = use_instance(app_env, url=async_url(url), data_dir=tmp_path / "b" / "src", keys=keys)
    made = await asyncio.to_thread(service.make_backup, settings, target=str(tmp_path / "b"))
    newer = tmp_path / "b" / made.entry.name
    await dispose_all()

    target = _target(app_env, empty_database, tmp_path, keys, kind)
    await _refused(target, newer, "made by a newer Rubin: its database is at schema revision ffff99990000")
    async with session_scope() as session:  # someone signed up on the target: it is no longer empty
        await accounts.sign_up_local(session=session, settings=target, email="eve@example.com",
                                     password="another long password 7")  # fmt: skip
    await dispose_all()
    await _refused(target, good, r"the target instance is not empty \(1 users\)")


async def test_keys_the_data_needs_must_be_this_instances(
    sqlite_backup: tuple[Keys, Path], app_env: Env, empty_database: Callable[[str], str], tmp_path: Path
) -> None:
    keys, good = sqlite_backup
    wrong_kek = Keys(backup=keys.backup, encryption=new_key_text(), secret=keys.secret)
    target = _target(app_env, empty_database, tmp_path / "1", wrong_kek)
    message = await _refused(target, good, "this instance's encryption key cannot open the backup's data")
    assert "ENCRYPTION_KEY" in message
    no_kek = _target(app_env, empty_database, tmp_path / "2", keys, encryption_key=None)  # and no key file
    await _refused(no_kek, good, "encryption key cannot open")
    wrong_secret = Keys(backup=keys.backup, encryption=keys.encryption, secret=os.urandom(24).hex())
    target = _target(app_env, empty_database, tmp_path / "3", wrong_secret)
    await _refused(target, good, "sealed with SECRET_KEY [0-9a-f]{8}; this instance has [0-9a-f]{8}")


async def test_a_file_in_the_way_in_data_dir_is_refused(
    sqlite_backup: tuple[Keys, Path], app_env: Env, empty_database: Callable[[str], str], tmp_path: Path
) -> None:
    keys, good = sqlite_backup
    target = _target(app_env, empty_database, tmp_path, keys)
    (target.data_dir / "knowledge").mkdir(parents=True)
    (target.data_dir / "knowledge" / "big.bin").write_bytes(b"something else")
    await _refused(target, good, "big.bin exists with other content")


async def test_postgresql_backups_need_pg_dump(
    app_env: Env, empty_database: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = empty_database("postgresql")
    upgrade_head(url)
    settings = use_instance(app_env, url=url, data_dir=tmp_path / "src", keys=Keys())
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # a machine without the PostgreSQL client
    with pytest.raises(DatabaseError, match=r"pg_dump is not installed.*apt-get install postgresql-client"):
        await asyncio.to_thread(service.make_backup, settings, target=str(tmp_path / "b"))
    assert not (tmp_path / "b").exists()


async def test_the_restore_command_prints_the_refusal(
    sqlite_backup: tuple[Keys, Path], app_env: Env, empty_database: Callable[[str], str], tmp_path: Path
) -> None:
    keys, good = sqlite_backup
    target = _target(app_env, empty_database, tmp_path, keys)
    cut = tmp_path / "cut.rubinbak"
    cut.write_bytes(good.read_bytes()[:-50])
    files = tree_digest(target.data_dir, Path(target.sync_database_url.split("///")[1]).parent)
    done = _cli("restore", str(cut))
    assert done.returncode == 1
    assert "error: cut.rubinbak: the file is cut short" in done.stderr and "(nothing was changed)" in done.stderr
    assert tree_digest(target.data_dir, Path(target.sync_database_url.split("///")[1]).parent) == files


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    return subprocess.run([sys.executable, "-m", "rubin_app", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)  # fmt: skip


async def test_the_commands_back_up_list_and_restore(
    app_env: Env, empty_database: Callable[[str], str], tmp_path: Path
) -> None:
    keys = Keys()
    url = empty_database("sqlite")
    upgrade_head(url)
    settings = use_instance(app_env, url=async_url(url), data_dir=tmp_path / "src", keys=keys)
    await populate(settings)
    await dispose_all()
    made = _cli("backup", "--to", str(tmp_path / "out"))
    assert made.returncode == 0, made.stderr
    path = Path(made.stdout.strip())
    assert path.parent == tmp_path / "out" and path.name.startswith("rubin-manual-")
    assert "backup made:" in made.stderr and "2 users, 1 chats, 2 messages" in made.stderr
    listed = _cli("backup", "list", str(tmp_path / "out"))
    assert listed.returncode == 0 and f"{path.name}" in listed.stdout and " manual " in listed.stdout
    assert listed.stdout.rstrip().endswith("ok")

    _target(app_env, empty_database, tmp_path, keys)
    done = _cli("restore", str(path))
    assert done.returncode == 0, done.stderr
    assert "restored 2 users, 1 chats, 2 messages, 0 files" in done.stdout
    again = _cli("restore", str(path))  # now the target holds the restored accounts
    assert again.returncode == 1 and "the target instance is not empty (2 users, 1 chats)" in again.stderr

    app_env(backup_key=None)
    refused = _cli("backup", "--to", str(tmp_path / "out"))
    assert refused.returncode == 1 and "error: BACKUP_KEY is not set" in refused.stderr
    assert "(no backup was made)" in refused.stderr


def test_pg_restore_must_be_as_new_as_the_dump() -> None:
    from rubin_app.backup.database import check_restore_tools, client_major

    have = client_major("pg_restore")
    check_restore_tools(str(have))  # the installed client restores its own dumps
    expected = rf"pg_restore {have} is older than the pg_dump that made the backup \(PostgreSQL {have + 1}\)"
    with pytest.raises(DatabaseError, match=expected + rf": install postgresql-client-{have + 1}"):
        check_restore_tools(str(have + 1))


async def test_a_sqlite_backup_is_not_restored_into_postgresql(
    sqlite_backup: tuple[Keys, Path], app_env: Env, empty_database: Callable[[str], str], tmp_path: Path
) -> None:
    keys, good = sqlite_backup
    target = _target(app_env, empty_database, tmp_path, keys, "postgresql")
    await _refused(target, good, "a backup of a sqlite database cannot be restored into postgresql")
