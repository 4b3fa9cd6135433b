"""Backup round trips on SQLite and PostgreSQL: nothing is lost, and the copy is one instant even while a
writer keeps inserting during the backup."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from rubin_app.backup import restore, service
from rubin_app.backup.destinations import Folder
from rubin_app.services.db import dispose_all, session_scope
from rubin_app.services.migrate import upgrade_head
from tests.services.backup_support import (
    Keys,
    check_restored,
    dump_amid_writes,
    populate,
    table_counts,
    use_instance,
    write_chats,
)


async def test_round_trip_while_a_writer_inserts(
    app_env: Callable[..., None],
    db_url: str,
    empty_database: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = Keys()
    settings = use_instance(app_env, url=db_url, data_dir=tmp_path / "src", keys=keys)
    src = await populate(settings)
    knowledge = settings.data_dir / "knowledge" / "notes.txt"  # an uploaded file (the generic file part)
    knowledge.parent.mkdir(parents=True)
    knowledge.write_text("Заметки для базы знаний")

    stop, written = asyncio.Event(), []
    writer = asyncio.create_task(write_chats(stop, src.user_id, written))
    while len(written) < 3:
        await asyncio.sleep(0.01)
    before = len(written)
    # The dump waits until the writer has committed 2 more chats, and returns only after 2 more: writes
    # surely happen while the backup runs, and the snapshot falls at an arbitrary moment between them.
    monkeypatch.setattr(service, "_dump", dump_amid_writes(service._dump, written))
    made = await asyncio.to_thread(service.make_backup, settings, target=str(tmp_path / "backups"))
    during = len(written) - before
    stop.set()
    await writer
    await dispose_all()
    assert during > 0, "the writer must have written while the backup ran"
    loaded = made.manifest["tables"]["conversations"] - 1  # the populated chat aside
    assert before <= loaded <= len(written)  # an instant between the writer's start and its end
    # Strictly inside the writing: the 2 chats counted before the dump are in it; of the 2 counted after it,
    # the second was committed after the dump ended (only one chat is ever committed but not yet counted).
    assert before + 2 <= loaded <= len(written) - 1
    assert made.manifest["tables"]["messages"] == 2 + 2 * loaded  # no chat caught half-written
    assert made.manifest["database"]["kind"] == ("sqlite" if db_url.startswith("sqlite") else "postgresql")
    assert made.manifest["database"]["revision"] == service.schema_head()
    assert "files/knowledge/notes.txt" in made.manifest["members"]
    assert not any(m.startswith(("files/encryption.key", "files/secret_key")) for m in made.manifest["members"])
    assert [e.name for e in Folder(tmp_path / "backups").list()] == [made.entry.name]

    # A new instance (a fresh database, migrated by its first start, and an empty DATA_DIR) with the same keys.
    kind = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    target_url = empty_database(kind)
    upgrade_head(target_url)
    target = use_instance(app_env, url=target_url, data_dir=tmp_path / "dst", keys=keys)
    done = await asyncio.to_thread(restore.restore, target, str(tmp_path / "backups" / made.entry.name))
    assert done.tables == made.manifest["tables"] and done.files == 1
    await check_restored(target, src)
    counts = await table_counts()
    assert counts["conversations"] == loaded + 1 and counts["messages"] == 2 + 2 * loaded
    assert (target.data_dir / "knowledge" / "notes.txt").read_text() == "Заметки для базы знаний"
    async with session_scope() as session:
        per_chat = (await session.exec(text(  # type: ignore[call-overload]
            "SELECT count(*) FROM messages GROUP BY conversation_id"))).all()  # fmt: skip
    assert {r[0] for r in per_chat} == {2}
    await dispose_all()


async def test_settings_in_the_backup_leave_secrets_out(
    app_env: Callable[..., None], db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import tarfile

    from rubin_app.backup import crypto

    keys = Keys()
    password_url = db_url if db_url.startswith("sqlite") else db_url.replace("postgres@", "postgres:pw-not-needed@")
    secrets = {"localai_api_key": "sk-localai-secret", "backup_s3_secret_access_key": "s3-secret-value"}
    settings = use_instance(app_env, url=password_url, data_dir=tmp_path / "src", keys=keys, **secrets)
    await populate(settings)
    caplog.set_level(logging.DEBUG)
    made = await asyncio.to_thread(service.make_backup, settings, target=str(tmp_path / "b"))
    assert made.entry.name in caplog.text  # the backup is logged, its keys never are
    for secret in (keys.backup, keys.encryption, keys.secret, "s3-secret-value", "pw-not-needed"):
        assert secret not in caplog.text
    plain = tmp_path / "plain.tgz"
    with open(tmp_path / "b" / made.entry.name, "rb") as src, open(plain, "wb") as out:
        crypto.decrypt(src, out, crypto.parse_key(keys.backup))
    with tarfile.open(plain, "r:gz") as tar:
        member = tar.extractfile("settings.json")
        assert member is not None
        raw = member.read().decode()
    for secret in (keys.backup, keys.encryption, keys.secret, "sk-localai-secret", "s3-secret-value", "pw-not-needed"):
        assert secret not in raw
    shown = json.loads(raw)
    assert shown["DATA_DIR"] == str(tmp_path / "src") and shown["WEBHOOK_ALLOW_PRIVATE"] is True
    assert "BACKUP_KEY" not in shown and "ENCRYPTION_KEY" not in shown and "SECRET_KEY" not in shown
    with open(tmp_path / "b" / made.entry.name, "rb") as fh:
        assert b"ada@example.com" not in fh.read()  # encrypted: not even the emails show
    await dispose_all()


async def test_an_older_backup_is_migrated_to_head_after_restore(
    app_env: Callable[..., None], db_url: str, empty_database: Callable[[str], str], tmp_path: Path
) -> None:
    from alembic import command

    from rubin_app.services.migrate import alembic_config

    keys = Keys()
    settings = use_instance(app_env, url=db_url, data_dir=tmp_path / "src", keys=keys)
    src = await populate(settings)
    await dispose_all()
    older = "d13c4e000003"  # the revision before two-factor sign-in: as if the backup came from that version
    await asyncio.to_thread(command.downgrade, alembic_config(settings.sync_database_url), older)
    made = await asyncio.to_thread(service.make_backup, settings, target=str(tmp_path / "b"))
    assert made.manifest["database"]["revision"] == older and "totp_secrets" not in made.manifest["tables"]

    target_url = empty_database("sqlite" if db_url.startswith("sqlite") else "postgresql")
    target = use_instance(app_env, url=target_url, data_dir=tmp_path / "dst", keys=keys)
    done = await asyncio.to_thread(restore.restore, target, str(tmp_path / "b" / made.entry.name))
    assert (done.revision_from, done.revision_to) == (older, service.schema_head())
    await check_restored(target, src)
    async with session_scope() as session:  # the newer tables exist now
        assert (await session.exec(text("SELECT count(*) FROM totp_secrets"))).one()[0] == 0  # type: ignore[call-overload]
    await dispose_all()
