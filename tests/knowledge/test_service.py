"""The knowledge service on SQLite and PostgreSQL: a user never reaches another user's bases or files; shared bases
are readable by everyone and changed by their owner only; publishing is an admin's, within the owner's groups."""

from __future__ import annotations

import pytest
from sqlmodel import select

from rubin_app.accounts import groups
from rubin_app.knowledge import service, uploads
from rubin_app.knowledge.models import KnowledgeChunk
from rubin_app.models import Role
from rubin_app.services import accounts
from rubin_app.services.chats import InputError
from tests.knowledge import _world
from tests.knowledge._parts import paragraphs
from tests.knowledge._world import World

world = _world.world  # the fixture


async def _code(call: object) -> str:
    with pytest.raises(InputError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code


async def test_user_b_cannot_list_read_change_or_delete_user_a_s_knowledge(world: World) -> None:
    ann, bob = await world.user("ann@example.com"), await world.user("bob@example.com")
    kb = await world.base(ann, "Ann's notes")
    file_id = await world.upload(ann, kb, "diary.txt", paragraphs(3, "diary"))
    await world.job().run_once()
    async with world.scope() as s:
        assert [b.name for b in await service.list_bases(session=s, user_id=bob)] == []
        assert await service.get_base(session=s, user_id=bob, kb_id=kb) is None
        assert await service.get_file(session=s, user_id=bob, file_id=file_id) is None
        assert await _code(service.list_files(session=s, user_id=bob, kb_id=kb)) == "kb_not_found"
        assert await _code(service.update_base(session=s, user_id=bob, kb_id=kb, name="Mine")) == "kb_not_found"
        assert await _code(service.cancel_file(session=s, user_id=bob, file_id=file_id)) == "kb_file_not_found"
        planted = service.add_file(session=s, user_id=bob, kb_id=kb, filename="x", size=1, sha256="0" * 64)
        assert await _code(planted) == "kb_not_found"
    assert await _code(service.delete_file(scope=world.scope, index=world.index, user_id=bob, file_id=file_id)) == (
        "kb_file_not_found"
    )
    assert await _code(service.delete_base(scope=world.scope, index=world.index, user_id=bob, kb_id=kb)) == (
        "kb_not_found"
    )
    assert await _code(world.upload(bob, kb, "planted.txt", b"planted")) == "kb_not_found"
    assert world.index.deleted_files == [] and world.index.deleted_kbs == []
    assert len(await world.chunks(file_id)) == 3 and world.index.files() == {file_id: 3}
    async with world.scope() as s:
        assert [b.name for b in await service.list_bases(session=s, user_id=ann)] == ["Ann's notes"]


async def test_a_shared_base_is_read_by_everyone_and_changed_by_its_owner_only(world: World) -> None:
    root = await world.user("root@example.com", Role.admin)
    ann, bob = await world.user("ann@example.com"), await world.user("bob@example.com")
    kb = await world.base(ann, "Handbook")
    await world.base(bob, "Bob's own")
    file_id = await world.upload(ann, kb, "rules.txt", paragraphs(2, "rules"))
    async with world.scope() as s:
        assert await _code(service.set_shared(session=s, actor_id=ann, kb_id=kb, shared=True)) == "admin_only"
        await service.set_shared(session=s, actor_id=root, kb_id=kb, shared=True)
    async with world.scope() as s:
        assert [(b.name, b.owner_id == bob) for b in await service.list_bases(session=s, user_id=bob)] == [
            ("Bob's own", True), ("Handbook", False),
        ]  # fmt: skip
        assert (await service.get_file(session=s, user_id=bob, file_id=file_id)) is not None
        assert [f.id for f in await service.list_files(session=s, user_id=bob, kb_id=kb)] == [file_id]
        assert await _code(service.update_base(session=s, user_id=bob, kb_id=kb, name="Mine")) == "kb_not_owner"
        assert await _code(service.cancel_file(session=s, user_id=bob, file_id=file_id)) == "kb_not_owner"
    assert await _code(service.delete_base(scope=world.scope, index=world.index, user_id=bob, kb_id=kb)) == (
        "kb_not_owner"
    )
    assert await _code(service.delete_file(scope=world.scope, index=world.index, user_id=bob, file_id=file_id)) == (
        "kb_not_owner"
    )
    assert await _code(world.upload(bob, kb, "planted.txt", b"planted")) == "kb_not_owner"
    assert await world.kb(kb) is not None and await world.file(file_id) is not None


async def test_publishing_needs_the_owners_groups_to_allow_knowledge_sharing(world: World) -> None:
    root, ann = await world.user("root@example.com", Role.admin), await world.user("ann@example.com")
    kb = await world.base(ann)
    async with world.scope() as s:
        group = await groups.create_group(session=s, actor_id=root, name="Interns")
        assert group.id is not None
        await groups.update_group(session=s, actor_id=root, group_id=group.id, knowledge_sharing=False)
        await groups.add_member(session=s, actor_id=root, group_id=group.id, user_id=ann)
    async with world.scope() as s:
        code = await _code(service.set_shared(session=s, actor_id=root, kb_id=kb, shared=True))
    assert code == "knowledge_sharing_not_allowed"
    assert (await world.kb(kb)).shared is False  # type: ignore[union-attr]


async def test_deleting_removes_chunks_rows_and_index_entries_of_that_file_or_base_only(world: World) -> None:
    ann = await world.user("ann@example.com")
    kb, other = await world.base(ann), await world.base(ann, "Other")
    first = await world.upload(ann, kb, "a.txt", paragraphs(3, "alpha"))
    second = await world.upload(ann, kb, "b.txt", paragraphs(2, "beta"))
    elsewhere = await world.upload(ann, other, "c.txt", paragraphs(4, "gamma"))
    await world.job().run_once()
    await service.delete_file(scope=world.scope, index=world.index, user_id=ann, file_id=first)
    assert await world.file(first) is None and await world.chunks(first) == []
    assert world.index.files() == {second: 2, elsewhere: 4}
    gone = await service.delete_base(scope=world.scope, index=world.index, user_id=ann, kb_id=kb)
    assert gone == [second] and await world.kb(kb) is None and await world.chunks(second) == []
    assert world.index.deleted_kbs == [kb] and world.index.files() == {elsewhere: 4}
    async with world.scope() as s:
        left = {c.file_id for c in (await s.exec(select(KnowledgeChunk))).all()}
    assert left == {elsewhere}


async def test_names_are_cleaned_and_checked(world: World) -> None:
    ann = await world.user("ann@example.com")
    async with world.scope() as s:
        base = await service.create_base(session=s, user_id=ann, name="  Year\u200b  2026\n plans ")
        assert base.name == "Year 2026 plans"
        assert await _code(service.create_base(session=s, user_id=ann, name=" \u200b ")) == "kb_bad_name"
        assert await _code(service.create_base(session=s, user_id=ann, name="x" * 201)) == "kb_bad_name"
    assert service.clean_filename("../../etc/passwd") == "passwd"
    assert service.clean_filename("C:\\Users\\ann\\report.pdf") == "report.pdf"
    long = service.clean_filename("a" * 300 + ".docx")
    assert len(long) == 255 and long.endswith("….docx")
    assert uploads.max_bytes(world.settings) == world.settings.knowledge_max_file_mb * 1024 * 1024


async def test_a_deleted_accounts_documents_leave_the_database_and_the_index(world: World) -> None:
    ann, bob = await world.user("ann@example.com"), await world.user("bob@example.com")
    kb, other = await world.base(ann), await world.base(bob)
    gone = await world.upload(ann, kb, "diary.txt", paragraphs(3, "diary"))
    kept = await world.upload(bob, other, "notes.txt", paragraphs(2, "notes"))
    job = world.job()
    await job.run_once()
    async with world.scope() as s:
        await accounts.delete_account(session=s, user_id=ann, actor_id=ann)
    assert await world.kb(kb) is None and await world.file(gone) is None and await world.chunks(gone) == []
    assert world.index.files() == {gone: 3, kept: 2}  # the index is not in the deletion's transaction...
    assert await job.forget_deleted_owners() == 1  # ...the loop's next step removes it
    assert world.index.files() == {kept: 2} and world.index.deleted_kbs == [kb]
    assert await job.forget_deleted_owners() == 0  # once
