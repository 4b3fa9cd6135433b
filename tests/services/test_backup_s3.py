"""Backups to S3 (a real S3 HTTP server, moto_server on loopback) and scheduled backups with retention."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rubin_app.backup import job, restore, service
from rubin_app.backup.destinations import DestinationError, Folder
from rubin_app.services.db import dispose_all, session_scope
from rubin_app.services.migrate import upgrade_head
from rubin_app.services.redis_store import RedisStore
from tests.conftest import async_url
from tests.fakes.s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server
from tests.services.backup_support import Keys, check_restored, populate, use_instance

Env = Callable[..., None]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    server = S3Server().start()
    try:
        yield server
    finally:
        server.stop()


def _s3(server: S3Server) -> dict[str, str]:
    return {"backup_s3_endpoint_url": server.url, "backup_s3_region": REGION, "backup_s3_access_key_id": ACCESS_KEY,
            "backup_s3_secret_access_key": SECRET_KEY}  # fmt: skip


async def test_backup_to_s3_lists_and_restores(
    s3_server: S3Server, app_env: Env, db_url: str, empty_database: Callable[[str], str], tmp_path: Path
) -> None:
    bucket = f"rubin-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)
    keys = Keys()
    settings = use_instance(app_env, url=db_url, data_dir=tmp_path / "src", keys=keys, **_s3(s3_server),
                            backup_destination=f"s3://{bucket}/nightly/rubin")  # fmt: skip
    src = await populate(settings)
    made = await asyncio.to_thread(service.make_backup, settings)
    await dispose_all()
    keys_in_bucket = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys_in_bucket == [f"nightly/rubin/{made.entry.name}"]
    _dest, rows = await asyncio.to_thread(service.list_backups, settings)
    assert [(e.name, e.made_by, state) for e, state in rows] == [(made.entry.name, "manual", "ok")]

    kind = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    target_url = empty_database(kind)
    target = use_instance(app_env, url=async_url(target_url), data_dir=tmp_path / "dst", keys=keys, **_s3(s3_server))
    source = f"s3://{bucket}/nightly/rubin/{made.entry.name}"  # into a database nobody migrated yet
    done = await asyncio.to_thread(restore.restore, target, source)
    assert done.revision_to == service.schema_head()
    await check_restored(target, src)
    await dispose_all()
    with pytest.raises(service.RestoreRefused, match=r"no backup 'nightly/rubin/rubin-missing\.rubinbak'"):
        await asyncio.to_thread(restore.restore, target, f"s3://{bucket}/nightly/rubin/rubin-missing.rubinbak")


async def test_s3_errors_are_clear(s3_server: S3Server, app_env: Env, db_url: str, tmp_path: Path) -> None:
    settings = use_instance(app_env, url=db_url, data_dir=tmp_path / "src", keys=Keys(), **_s3(s3_server))
    with pytest.raises(DestinationError, match=r"S3 upload at s3://no-such-bucket/ failed: .*NoSuchBucket"):
        await asyncio.to_thread(service.make_backup, settings, target="s3://no-such-bucket")
    wrong = {**_s3(s3_server), "backup_s3_endpoint_url": "http://127.0.0.1:9"}
    settings = use_instance(app_env, url=db_url, data_dir=tmp_path / "src", keys=Keys(), **wrong)
    with pytest.raises(DestinationError, match="S3 listing at s3://b/ failed"):
        await asyncio.to_thread(service.list_backups, settings, "s3://b")
    await dispose_all()


@pytest.mark.parametrize("where", ["folder", "s3"])
async def test_the_schedule_keeps_n_and_deletes_only_its_own_older_backups(
    where: str, s3_server: S3Server, app_env: Env, empty_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = empty_database("sqlite")
    upgrade_head(url)
    if where == "s3":
        bucket = f"rubin-{uuid.uuid4().hex[:8]}"
        s3_server.client().create_bucket(Bucket=bucket)
        target, extra = f"s3://{bucket}/auto", _s3(s3_server)
    else:
        target, extra = str(tmp_path / "backups"), {}
    settings = use_instance(app_env, url=async_url(url), data_dir=tmp_path / "src", keys=Keys(), backup_keep=2,
                            backup_interval_hours=1, backup_destination=target, **extra)  # fmt: skip
    await populate(settings)
    manual = await asyncio.to_thread(service.make_backup, settings)  # the operator's own: never pruned
    the_job = job.BackupJob(settings, None, session_scope)
    first = await the_job.run_if_due()
    assert first is not None and first.entry.made_by == "scheduled"
    assert await the_job.run_if_due() is None  # not due again within BACKUP_INTERVAL_HOURS
    settings = use_instance(app_env, url=async_url(url), data_dir=tmp_path / "src", keys=Keys(), backup_keep=2,
                            backup_interval_hours=0, backup_destination=target, **extra)  # fmt: skip
    the_job = job.BackupJob(settings, None, session_scope)
    made = [first] + [await the_job.run_if_due() for _ in range(3)]
    names = [m.entry.name for m in made if m is not None]
    assert len(names) == 4
    _dest, rows = await asyncio.to_thread(service.list_backups, settings)
    assert [e.name for e, _state in rows] == sorted([manual.entry.name, *names[-2:]])
    await dispose_all()


async def test_one_worker_at_a_time(app_env: Env, db_url: str, tmp_path: Path, redis_url: str) -> None:
    settings = use_instance(app_env, url=db_url, data_dir=tmp_path / "src", keys=Keys(), backup_interval_hours=0,
                            backup_destination=str(tmp_path / "backups"), redis_url=redis_url)  # fmt: skip
    await populate(settings)
    stores = [RedisStore(redis_url, timeout=2), RedisStore(redis_url, timeout=2)]
    workers = [job.BackupJob(settings, store, session_scope) for store in stores]
    results = await asyncio.gather(*(w.run_if_due() for w in workers))
    assert sum(r is not None for r in results) == 1  # the other found the lock taken
    assert len(Folder(tmp_path / "backups").list()) == 1
    assert await workers[1].run_if_due() is not None  # the lock was released
    for store in stores:
        await store.close()
    await dispose_all()


async def test_the_loop_runs_only_with_an_interval(app_env: Env, tmp_path: Path) -> None:
    off = use_instance(app_env, url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", data_dir=tmp_path, keys=Keys())
    the_job = job.BackupJob(off, None, session_scope)
    the_job.start()
    assert the_job._task is None  # BACKUP_INTERVAL_HOURS=0: no scheduled backups
    on = use_instance(app_env, url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", data_dir=tmp_path, keys=Keys(),
                      backup_interval_hours=24)  # fmt: skip
    the_job = job.BackupJob(on, None, session_scope)
    the_job.start()
    assert the_job._task is not None and not the_job._task.done()
    await the_job.stop()
    assert the_job._task is None


def test_a_schedule_without_a_key_stops_the_start(make_settings: Callable[..., Any]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="BACKUP_INTERVAL_HOURS needs BACKUP_KEY"):
        make_settings(backup_interval_hours=6)
    with pytest.raises(ValidationError, match="must be base64 of 32 random bytes"):
        make_settings(backup_key="correct horse battery staple")
    with pytest.raises(ValidationError, match=r"must be a folder path or s3://bucket/prefix"):
        make_settings(backup_destination="ftp://host/backups")
    assert make_settings(backup_interval_hours=6, backup_key=Keys().backup).backup_keep == 7
