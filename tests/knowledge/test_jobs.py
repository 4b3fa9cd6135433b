"""The ingestion job on SQLite and PostgreSQL: progress, cancel, a worker dying mid-job, duplicates, bad files among
good ones, and an embedding server that is down or changes its dimension — each file ends with a clear status, and
nothing indexed of another file is ever lost."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest

from rubin_app.knowledge import service, uploads
from rubin_app.knowledge.models import FileStatus, KnowledgeChunk, KnowledgeFile
from rubin_app.services.chats import InputError
from tests.conftest import free_port
from tests.fakes.localai_standin import EMBED_DIM
from tests.knowledge import _world
from tests.knowledge._parts import GATE, Embedder, paragraphs
from tests.knowledge._world import World

world = _world.world  # the fixture

pytestmark = pytest.mark.asyncio


async def test_a_file_goes_from_queued_to_ready_with_growing_progress(world: World) -> None:
    owner = await world.user("ann@example.com")
    kb = await world.base(owner)
    file_id = await world.upload(owner, kb, "notes.md", paragraphs(40))
    assert (await world.file(file_id)).status == FileStatus.queued  # type: ignore[union-attr]
    assert world.stored() == [str(file_id)]  # the bytes wait in DATA_DIR until the job is done

    seen: list[tuple[str, float]] = []
    add = world.index.add

    async def watching_add(chunks: list[KnowledgeChunk], vectors: list[list[float]] | None) -> None:
        row = await world.file(file_id)
        assert row is not None
        seen.append((row.status, row.progress))
        await add(chunks, vectors)

    world.index.add = watching_add  # type: ignore[method-assign]
    assert await world.job(batch_size=8).run_once() == 1

    assert [s for s, _ in seen] == ["embedding"] * 5
    progress = [p for _, p in seen]
    assert progress == sorted(progress) and 0.1 < progress[0] < progress[-1] <= 1.0
    row = await world.file(file_id)
    assert row is not None
    assert (row.status, row.progress, row.chunk_count, row.kind, row.error) == ("ready", 1.0, 40, "markdown", "")
    chunks = await world.chunks(file_id)
    assert [c.text for c in chunks][:2] == ["Paragraph 0 about ruby number 0.", "Paragraph 1 about ruby number 1."]
    assert {c.kb_id for c in chunks} == {kb} and {c.owner_id for c in chunks} == {owner}
    assert world.index.files() == {file_id: 40}
    assert {len(v[2] or []) for v in world.index.entries.values()} == {EMBED_DIM}  # the stand-in's dimension
    base = await world.kb(kb)
    assert base is not None and (base.embedding_dim, base.embedding_model) == (EMBED_DIM, "standin-model")
    assert world.stored() == []  # done: the upload is removed


async def test_cancel_stops_between_batches_and_removes_what_was_indexed(world: World) -> None:
    owner = await world.user("ann@example.com")
    kb = await world.base(owner)
    kept = await world.upload(owner, kb, "kept.txt", paragraphs(3, "kept"))
    await world.job().run_once()
    doomed = await world.upload(owner, kb, "long.txt", paragraphs(30))
    waiting = await world.upload(owner, kb, "waiting.txt", paragraphs(2, "waiting"))
    # cancelled while queued: never worked on
    await uploads.cancel(scope=world.scope, settings=world.settings, user_id=owner, file_id=waiting)

    add = world.index.add
    calls = 0

    async def cancel_after_first(chunks: list[KnowledgeChunk], vectors: list[list[float]] | None) -> None:
        nonlocal calls
        calls += 1
        await add(chunks, vectors)
        if calls == 1:
            async with world.scope() as session:
                await service.cancel_file(session=session, user_id=owner, file_id=doomed)

    world.index.add = cancel_after_first  # type: ignore[method-assign]
    assert await world.job(batch_size=5).run_once() == 1  # only the long file; the cancelled one is skipped

    assert calls == 1  # stopped at the next batch
    for file_id in (doomed, waiting):
        row = await world.file(file_id)
        assert row is not None and row.status == FileStatus.cancelled
        assert await world.chunks(file_id) == []
    assert world.index.files() == {kept: 3}
    assert world.stored() == []


async def test_a_job_whose_worker_died_is_taken_again_and_finished_once(world: World) -> None:
    owner = await world.user("ann@example.com")
    kb = await world.base(owner)
    file_id = await world.upload(owner, kb, "big.txt", paragraphs(20))
    dying = world.job(batch_size=5, stale_seconds=0.6)
    add = world.index.add
    task: asyncio.Task[int] | None = None

    async def die_after_two(chunks: list[KnowledgeChunk], vectors: list[list[float]] | None) -> None:
        await add(chunks, vectors)
        if len(world.index.entries) >= 10:
            assert task is not None
            task.cancel()  # the worker is killed in the middle of the file
            await asyncio.sleep(10)

    world.index.add = die_after_two  # type: ignore[method-assign]
    task = asyncio.create_task(dying.run_once())
    await asyncio.gather(task, return_exceptions=True)
    row = await world.file(file_id)
    assert row is not None and row.status == FileStatus.embedding and row.attempts == 1
    assert len(await world.chunks(file_id)) == 10  # half of it, left behind by the dead worker
    world.index.add = add  # type: ignore[method-assign]

    other = world.job(batch_size=5, stale_seconds=0.6)
    assert await other.run_once() == 0  # the claim is fresh: nobody else may take it yet
    await asyncio.sleep(0.8)
    assert await other.run_once() == 1  # stale now: taken again, started over
    row = await world.file(file_id)
    assert row is not None and (row.status, row.attempts, row.chunk_count) == ("ready", 2, 20)
    chunks = await world.chunks(file_id)
    assert [c.ordinal for c in chunks] == list(range(20))  # no duplicates of the first attempt's passages
    assert world.index.files() == {file_id: 20}
    assert set(world.index.entries) == {c.id for c in chunks}


async def test_the_loop_survives_a_restart_and_two_workers_never_share_a_file(world: World) -> None:
    owner = await world.user("ann@example.com")
    kb = await world.base(owner)
    ids = [await world.upload(owner, kb, f"f{i}.txt", paragraphs(6, f"topic{i}")) for i in range(4)]
    first, second = world.job(batch_size=2), world.job(batch_size=2)
    first.start()
    second.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = [await world.file(i) for i in ids]
            if all(r is not None and r.status == FileStatus.ready for r in rows):
                break
            await asyncio.sleep(0.05)
    finally:
        await first.stop()
        await second.stop()
    rows = [await world.file(i) for i in ids]
    assert [(r.status, r.attempts, r.chunk_count) for r in rows if r] == [("ready", 1, 6)] * 4
    assert world.index.files() == dict.fromkeys(ids, 6)


async def test_the_same_file_twice_in_a_base_is_refused_by_name(world: World) -> None:
    owner = await world.user("ann@example.com")
    kb, other_kb = await world.base(owner), await world.base(owner, "Other")
    first = await world.upload(owner, kb, "report.txt", b"The same words.")
    with pytest.raises(InputError) as caught:
        await world.upload(owner, kb, "copy of report.txt", b"The same words.")
    assert caught.value.code == "kb_duplicate_file" and caught.value.params == {"name": "report.txt"}
    assert world.stored() == [str(first)]  # the refused copy left nothing on disk
    await world.upload(owner, other_kb, "report.txt", b"The same words.")  # another base: fine
    async with world.scope() as session:
        await service.cancel_file(session=session, user_id=owner, file_id=first)
    again = await world.upload(owner, kb, "report again.txt", b"The same words.")  # a cancelled one is queued again
    assert again == first
    row = await world.file(first)
    assert row is not None and (row.status, row.filename) == ("queued", "report again.txt")


async def test_a_file_over_the_limit_is_refused_before_it_is_stored(world: World) -> None:
    owner = await world.user("ann@example.com")
    kb = await world.base(owner)

    async def big() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * (1024 * 1024)

    with pytest.raises(InputError) as caught:
        small = world.settings.model_copy(update={"knowledge_max_file_mb": 2})
        await uploads.enqueue(
            scope=world.scope, settings=small, user_id=owner, kb_id=kb, filename="big.txt", content=big()
        )
    assert caught.value.code == "kb_file_too_large" and caught.value.params == {"limit_mb": 2}
    assert world.stored() == []


async def test_bad_files_fail_each_with_its_reason_and_the_good_ones_are_indexed(world: World) -> None:
    owner = await world.user("ann@example.com")
    kb = await world.base(owner)
    good = await world.upload(owner, kb, "good.txt", paragraphs(3))
    binary = await world.upload(owner, kb, "photo.txt", bytes(range(128, 256)) * 4)  # mislabelled binary
    corrupt = await world.upload(owner, kb, "broken.pdf", b"\x00\x01 damaged")
    empty = await world.upload(owner, kb, "empty.txt", b"   \n\n  ")
    good2 = await world.upload(owner, kb, "good2.txt", paragraphs(2, "emerald"))
    assert await world.job().run_once() == 5
    outcome = {i: (r.status, r.error) for i in (good, binary, corrupt, empty, good2) if (r := await world.file(i))}
    assert outcome == {
        good: ("ready", ""), binary: ("failed", "unsupported_type"), corrupt: ("failed", "corrupt"),
        empty: ("failed", "empty"), good2: ("ready", ""),
    }  # fmt: skip
    failed = await world.file(binary)
    assert failed is not None and failed.error_detail == "this kind of file is not supported"
    assert world.index.files() == {good: 3, good2: 2}
    assert world.stored() == []


async def test_an_embedding_server_that_is_down_fails_the_files_and_keeps_what_was_indexed(world: World) -> None:
    owner = await world.user("ann@example.com")
    kb = await world.base(owner)
    indexed = await world.upload(owner, kb, "indexed.txt", paragraphs(4))
    await world.job().run_once()

    down = Embedder(f"http://127.0.0.1:{free_port()}")
    late = [await world.upload(owner, kb, f"late{i}.txt", paragraphs(3, f"late{i}")) for i in range(2)]
    assert await world.job(embedder=down).run_once() == 2
    for file_id in late:
        row = await world.file(file_id)
        assert row is not None and (row.status, row.error) == ("failed", "embedding_unreachable")
        assert row.error_detail == "embedding server: unreachable"
    assert world.index.files() == {indexed: 4}
    assert len(await world.chunks(indexed)) == 4

    world.embedder.fail_after = world.embedder.calls + 1  # goes away after the first batch of the next file
    midway = await world.upload(owner, kb, "midway.txt", paragraphs(12, "sapphire"))
    await world.job(batch_size=4).run_once()
    row = await world.file(midway)
    assert row is not None and (row.status, row.error) == ("failed", "embedding_unreachable")
    assert await world.chunks(midway) == [] and world.index.files() == {indexed: 4}  # its first batch removed


async def test_vectors_of_another_dimension_fail_the_file_not_the_base(world: World) -> None:
    owner = await world.user("ann@example.com")
    kb = await world.base(owner)
    indexed = await world.upload(owner, kb, "indexed.txt", paragraphs(2))
    await world.job().run_once()

    class Wider(Embedder):
        async def embed(self, texts: list[str], *, kind: str = "document") -> list[list[float]]:  # type: ignore[override]
            return [v + [0.0] * 8 for v in await super().embed(texts)]

    wider = Wider(world.embedder.base_url)
    other = await world.upload(owner, kb, "other.txt", paragraphs(2, "jade"))
    await world.job(embedder=wider).run_once()
    row = await world.file(other)
    assert row is not None and (row.status, row.error) == ("failed", "embedding_wrong_dimension")
    assert f"{EMBED_DIM + 8}-dimensional" in row.error_detail and f"holds {EMBED_DIM}" in row.error_detail
    assert world.index.files() == {indexed: 2}
    base = await world.kb(kb)
    assert base is not None and base.embedding_dim == EMBED_DIM


async def test_a_file_the_workers_keep_dying_on_fails_and_lost_bytes_are_reported(world: World) -> None:
    owner = await world.user("ann@example.com")
    kb = await world.base(owner)
    cursed = await world.upload(owner, kb, "cursed.txt", paragraphs(2))
    lost = await world.upload(owner, kb, "lost.txt", paragraphs(2, "lost"))
    async with world.scope() as session:
        row = await session.get(KnowledgeFile, cursed)
        assert row is not None
        row.attempts, row.status = 3, FileStatus.embedding  # three workers died on it; its claim is stale
        session.add(row)
    os.remove(uploads.stored_path(world.settings, lost))
    await world.job().run_once()
    assert (await world.file(cursed)).error == "interrupted"  # type: ignore[union-attr]
    assert (await world.file(lost)).error == "upload_missing"  # type: ignore[union-attr]


async def test_a_file_deleted_while_it_is_read_leaves_nothing_behind(world: World) -> None:
    owner = await world.user("ann@example.com")
    kb = await world.base(owner)
    file_id = await world.upload(owner, kb, "held.txt", b"[[hold]]\n\nsecond paragraph")
    GATE.entered.clear()
    GATE.release.clear()
    task = asyncio.create_task(world.job().run_once())
    try:
        assert await asyncio.to_thread(GATE.entered.wait, 10)
        await service.delete_file(scope=world.scope, index=world.index, user_id=owner, file_id=file_id)
    finally:
        GATE.release.set()
    await task
    assert await world.file(file_id) is None and await world.chunks(file_id) == []
    assert world.index.files() == {} and world.stored() == []
    assert file_id in world.index.deleted_files


async def test_a_sweep_removes_uploads_no_file_waits_for(world: World) -> None:
    owner = await world.user("ann@example.com")
    kb = await world.base(owner)
    waiting = await world.upload(owner, kb, "waiting.txt", b"text")
    folder = uploads.upload_dir(world.settings)
    (folder / "999999").write_bytes(b"orphan")
    old = folder / "abc.part"
    old.write_bytes(b"a crash mid-upload")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    (folder / "fresh.part").write_bytes(b"an upload in progress")
    assert await world.job().sweep() == 2
    assert world.stored() == sorted([str(waiting), "fresh.part"])


async def test_a_lone_worker_takes_up_at_once_what_its_previous_process_left(world: World) -> None:
    owner = await world.user("ann@example.com")
    kb = await world.base(owner)
    file_id = await world.upload(owner, kb, "left.txt", paragraphs(4))
    previous = world.job()
    assert await previous.claim() is not None  # claimed, then the process died: the claim is seconds old
    restarted = world.job()  # default staleness (90 s); no REDIS_URL: the only worker
    restarted.start()
    try:
        deadline = time.monotonic() + 15
        while (row := await world.file(file_id)) is not None and row.status != FileStatus.ready:
            assert time.monotonic() < deadline, row.status
            await asyncio.sleep(0.05)
    finally:
        await restarted.stop()
    assert row is not None and (row.attempts, row.chunk_count) == (2, 4)
