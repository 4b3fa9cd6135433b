"""Model connections on SQLite and PostgreSQL: two stand-ins as two connections plus one that is down, the merged
picker list, routing (prefix, "@connection" on clashes, the cloud key), capabilities, the sealed key that never
shows, and admin-only management."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from sqlmodel import select

from rubin_app.accounts import groups
from rubin_app.connections import sealing
from rubin_app.connections import service as connections
from rubin_app.connections.models import Connection
from rubin_app.connections.sealing import open_key
from rubin_app.models import AuditEvent, MessageStatus, Role
from rubin_app.services import chat_flow
from rubin_app.services.chats import InputError
from rubin_app.services.runtime import Runtime
from rubin_app.vault import cli as vault_cli
from rubin_app.vault.keyring import KeyringError, new_key_text, write_key_file
from rubin_app.vault.service import get_vault, reset_vault
from tests.conftest import free_port
from tests.factories import make_account
from tests.fakes.localai_standin import StandIn, StandInConfig

CLOUD_KEY = "sk-cloud-7f3a9c1e5b2d8f4a6c0e"  # what a cloud provider's key looks like; it must never show anywhere
CLOUD_MODELS = ["cloud-chat", "cloud-embed-small", "standin-small"]


@pytest.fixture(scope="module")
def cloud() -> Iterator[StandIn]:
    """A second OpenAI-compatible server that wants a bearer key (a cloud provider)."""
    server = StandIn(StandInConfig(models=list(CLOUD_MODELS), api_key=CLOUD_KEY)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def rt(make_runtime: Callable[..., Any], cloud: StandIn) -> AsyncIterator[Runtime]:
    """A runtime whose router is closed after the test (the added connections' clients)."""
    cloud.reset()
    runtime: Runtime = await make_runtime()
    yield runtime
    await runtime.router.aclose()


async def until(check: Callable[[], bool], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _admin(db_scope: Callable[[], Any]) -> tuple[int, int]:
    async with db_scope() as s:
        admin = await make_account(s, email="admin@example.com", role=Role.admin)
        user = await make_account(s, email="user@example.com")
    assert admin.id and user.id
    return admin.id, user.id


async def _add(db_scope: Callable[[], Any], rt: Runtime, actor: int, **fields: Any) -> connections.ConnectionView:
    async with db_scope() as s:
        view = await connections.create_connection(session=s, settings=rt.settings, actor_id=actor, **fields)
    await rt.router.changed()
    return view


async def test_two_servers_merge_into_one_list_and_a_down_one_breaks_nothing(db_scope, rt, cloud, standin) -> None:
    admin, user = await _admin(db_scope)
    await _add(db_scope, rt, admin, name="Cloud", base_url=cloud.url + "/v1", api_key=CLOUD_KEY)
    await _add(db_scope, rt, admin, name="Spare", base_url=f"http://127.0.0.1:{free_port()}")  # nothing listens
    names = await rt.router.get()
    # LOCALAI_URL's models keep their names; a clash becomes "name@connection"; the down one lists nothing.
    assert names == ["standin-model", "standin-small", "cloud-chat", "cloud-embed-small", "standin-small@Cloud"]
    health = {h.name: h for h in rt.router.health()}
    assert (health["LocalAI"].ok, health["Cloud"].ok, health["Cloud"].models) == (True, True, 3)
    assert (health["Spare"].ok, health["Spare"].error) == (False, "unreachable")
    assert rt.router.error is None  # models exist: no "models unavailable"

    # A chat on the cloud model goes to the cloud server, with its key; one on a local model to LocalAI.
    started = await chat_flow.send_message(
        rt, user_id=user, conversation_id=None, text="Hello cloud", model="cloud-chat"
    )
    await started.run.wait_done()
    assert started.run.status == MessageStatus.complete
    assert [r.model for r in cloud.records] == ["cloud-chat"] and not standin.records
    assert cloud.last_headers.get("authorization") == f"Bearer {CLOUD_KEY}"
    started = await chat_flow.send_message(
        rt, user_id=user, conversation_id=started.conversation.id, text="And the clash?", model="standin-small@Cloud"
    )
    await started.run.wait_done()
    assert started.run.status == MessageStatus.complete and started.messages[1].model == "standin-small@Cloud"
    assert [r.model for r in cloud.records][-1] == "standin-small"  # the upstream name went upstream
    local = await chat_flow.send_message(rt, user_id=user, conversation_id=None, text="Hi", model="standin-small")
    await local.run.wait_done()
    assert local.run.status == MessageStatus.complete and [r.model for r in standin.records] == ["standin-small"]


async def test_a_connection_going_down_is_shown_and_the_others_keep_answering(db_scope, rt, cloud) -> None:
    admin, user = await _admin(db_scope)
    await _add(db_scope, rt, admin, name="Cloud", base_url=cloud.url, api_key=CLOUD_KEY, prefix="cloud/")
    assert "cloud/cloud-chat" in await rt.router.get()
    cloud.stop()
    try:
        names = await rt.router.get(refresh=True)
        assert "standin-model" in names  # LocalAI still answers
        assert next(h for h in rt.router.health() if h.name == "Cloud").ok is False
        started = await chat_flow.send_message(rt, user_id=user, conversation_id=None, text="Hi", model="standin-model")
        await started.run.wait_done()
        assert started.run.status == MessageStatus.complete
    finally:
        cloud.start()


async def test_a_wrong_key_is_an_auth_failure_of_that_connection_only(db_scope, rt, cloud) -> None:
    admin, _ = await _admin(db_scope)
    await _add(db_scope, rt, admin, name="Cloud", base_url=cloud.url, api_key="sk-wrong")
    assert await rt.router.get() == ["standin-model", "standin-small"]
    cloud_health = next(h for h in rt.router.health() if h.name == "Cloud")
    assert (cloud_health.ok, cloud_health.error) == (False, "auth")


async def test_prefix_allow_list_and_routing(db_scope, rt, cloud) -> None:
    admin, _ = await _admin(db_scope)
    await _add(db_scope, rt, admin, name="Cloud", base_url=cloud.url, api_key=CLOUD_KEY, prefix="cloud/",
               models=["cloud-chat", "cloud-embed-small"])  # fmt: skip
    entries = {e.name: e for e in await rt.router.entries()}
    assert [n for n in entries if n.startswith("cloud/")] == ["cloud/cloud-chat", "cloud/cloud-embed-small"]
    assert entries["cloud/cloud-embed-small"].capabilities == ("embeddings",)
    assert entries["cloud/cloud-chat"].capabilities == ("chat",)
    client, upstream = rt.router.client_for("cloud/cloud-chat")
    assert upstream == "cloud-chat" and client.base_url == cloud.url
    assert rt.router.client_for("standin-model") == (rt.client, "standin-model")
    assert rt.router.client_for("never-heard-of") == (rt.client, "never-heard-of")  # LocalAI answers as before


async def test_a_fresh_worker_resolves_a_connection_model_before_any_list_was_read(
    db_scope, rt, make_runtime, cloud
) -> None:
    admin, _ = await _admin(db_scope)
    await _add(db_scope, rt, admin, name="Cloud", base_url=cloud.url, api_key=CLOUD_KEY, prefix="cloud/")
    fresh: Runtime = await make_runtime()  # a worker (or a job) that has read nothing yet
    try:
        assert fresh.router.client_for("cloud/cloud-embed-small")[0] is fresh.client  # it cannot know yet
        client, upstream = await fresh.router.resolve("cloud/cloud-embed-small")
        assert (client.base_url, upstream) == (cloud.url, "cloud-embed-small")
        answer = await client.embeddings({"model": upstream, "input": ["hello"]})
        assert len(answer["data"]) == 1 and cloud.embedding_requests == 1
    finally:
        await fresh.router.aclose()


async def test_capability_overrides_win_over_the_guess(db_scope, rt, cloud) -> None:
    admin, user = await _admin(db_scope)
    view = await _add(db_scope, rt, admin, name="Cloud", base_url=cloud.url, api_key=CLOUD_KEY, prefix="c/")
    async with db_scope() as s:
        await connections.set_capabilities(session=s, actor_id=admin, connection_id=view.id, model="cloud-chat",
                                           values=["chat", "vision", "tools"])  # fmt: skip
        await connections.set_capabilities(session=s, actor_id=admin, connection_id=0, model="standin-small",
                                           values=["embeddings"])  # fmt: skip
        with pytest.raises(InputError):
            await connections.set_capabilities(session=s, actor_id=admin, connection_id=0, model="x", values=["fly"])
        with pytest.raises(InputError) as refused:
            await connections.set_capabilities(session=s, actor_id=user, connection_id=0, model="x", values=None)
        assert refused.value.code == "admin_only"
    await rt.router.changed()
    caps = {e.name: e.capabilities for e in await rt.router.entries()}
    assert caps["c/cloud-chat"] == ("chat", "vision", "tools") and caps["standin-small"] == ("embeddings",)
    async with db_scope() as s:
        await connections.set_capabilities(
            session=s, actor_id=admin, connection_id=0, model="standin-small", values=None
        )
    await rt.router.changed()
    assert rt.router.capabilities_of("standin-small") == ("chat",)


async def test_group_allow_lists_apply_to_the_merged_names(db_scope, rt, cloud) -> None:
    admin, user = await _admin(db_scope)
    await _add(db_scope, rt, admin, name="Cloud", base_url=cloud.url, api_key=CLOUD_KEY)
    async with db_scope() as s:
        group = await groups.create_group(session=s, actor_id=admin, name="Cloud only")
        assert group.id is not None
        await groups.update_group(session=s, actor_id=admin, group_id=group.id, models=["standin-small@Cloud"])
        await groups.add_member(session=s, actor_id=admin, group_id=group.id, user_id=user)
    await rt.permissions.changed()
    assert await rt.router.allowed(await rt.permissions.get(user)) == ["standin-small@Cloud"]
    with pytest.raises(InputError) as refused:
        await chat_flow.check_model(rt, "standin-small", user_id=user)
    assert refused.value.code == "model_not_allowed"
    assert await chat_flow.check_model(rt, "standin-small@Cloud", user_id=user) == "standin-small@Cloud"


async def test_the_key_is_sealed_write_only_and_never_logged(db_scope, rt, cloud, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    admin, _ = await _admin(db_scope)
    view = await _add(db_scope, rt, admin, name="Cloud", base_url=cloud.url, api_key=CLOUD_KEY)
    assert view.has_key and CLOUD_KEY not in repr(view)
    async with db_scope() as s:
        row = (await s.exec(select(Connection))).one()
        listed = await connections.list_connections(session=s, actor_id=admin)
        audit_rows = (await s.exec(select(AuditEvent))).all()
    assert CLOUD_KEY not in row.api_key_sealed and row.api_key_sealed
    assert open_key(view.id, row.api_key_sealed, rt.settings) == CLOUD_KEY
    with pytest.raises(KeyringError):  # bound to its connection: copied into another row, it does not open
        open_key(view.id + 1, row.api_key_sealed, rt.settings)
    assert CLOUD_KEY not in repr(listed)
    assert [a.action for a in audit_rows if a.action.startswith("connection_")] == ["connection_created"]
    assert all(CLOUD_KEY not in a.detail for a in audit_rows)
    # Saving the form without a key keeps the key; a new key replaces it; clearing removes it.
    async with db_scope() as s:
        await connections.update_connection(session=s, settings=rt.settings, actor_id=admin, connection_id=view.id,
                                            name="Cloud", api_key="")  # fmt: skip
        kept = await s.get(Connection, view.id)
        assert kept is not None and open_key(view.id, kept.api_key_sealed, rt.settings) == CLOUD_KEY
        cleared = await connections.update_connection(
            session=s, settings=rt.settings, actor_id=admin, connection_id=view.id, clear_key=True
        )
        assert not cleared.has_key
    await rt.router.changed()
    await rt.router.get(refresh=True)  # the server now refuses: the failure names no key either
    assert CLOUD_KEY not in caplog.text


async def test_only_admins_manage_connections(db_scope, rt) -> None:
    admin, user = await _admin(db_scope)
    view = await _add(db_scope, rt, admin, name="Lab", base_url="http://127.0.0.1:9")
    attempts = [
        lambda s: connections.list_connections(session=s, actor_id=user),
        lambda s: connections.create_connection(
            session=s, settings=rt.settings, actor_id=user, name="Mine", base_url="http://127.0.0.1:9"
        ),
        lambda s: connections.update_connection(
            session=s, settings=rt.settings, actor_id=user, connection_id=view.id, base_url="http://127.0.0.1:10"
        ),
        lambda s: connections.delete_connection(session=s, actor_id=user, connection_id=view.id),
    ]
    for attempt in attempts:
        async with db_scope() as s:
            with pytest.raises(InputError) as refused:
                await attempt(s)
            assert refused.value.code == "admin_only"
    async with db_scope() as s:
        (row,) = await connections.list_connections(session=s, actor_id=admin)
    assert (row.name, row.base_url) == ("Lab", "http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"name": "", "base_url": "http://127.0.0.1:9"}, "bad_connection_name"),
        ({"name": "a@b", "base_url": "http://127.0.0.1:9"}, "bad_connection_name"),
        ({"name": "LocalAI", "base_url": "http://127.0.0.1:9"}, "connection_name_taken"),
        ({"name": "X", "base_url": "ftp://files.example.com"}, "bad_connection_url"),
        ({"name": "X", "base_url": "http://user:pw@127.0.0.1:9"}, "bad_connection_url"),
        ({"name": "X", "base_url": "not a url"}, "bad_connection_url"),
        ({"name": "X", "base_url": "http://127.0.0.1:9", "prefix": "a b"}, "bad_connection_prefix"),
        ({"name": "X", "base_url": "http://127.0.0.1:9", "api_key": "two words"}, "bad_connection_key"),
    ],
)
async def test_bad_input_is_refused_and_saves_nothing(db_scope, rt, fields: dict[str, str], code: str) -> None:
    admin, _ = await _admin(db_scope)
    async with db_scope() as s:
        with pytest.raises(InputError) as refused:
            await connections.create_connection(session=s, settings=rt.settings, actor_id=admin, **fields)
    assert refused.value.code == code
    async with db_scope() as s:
        assert (await s.exec(select(Connection))).all() == []


async def test_private_addresses_only_when_allowed(db_scope, make_runtime) -> None:
    rt: Runtime = await make_runtime(connections_allow_private="false")
    admin, _ = await _admin(db_scope)
    async with db_scope() as s:
        with pytest.raises(InputError) as refused:
            await connections.create_connection(session=s, settings=rt.settings, actor_id=admin, name="LAN",
                                                base_url="http://127.0.0.1:8080/v1")  # fmt: skip
    assert refused.value.code == "bad_connection_url" and "loopback" in str(refused.value.params["reason"])


async def test_a_change_reaches_every_worker_at_once(db_scope, make_redis_runtime, cloud) -> None:
    worker_a, worker_b = await make_redis_runtime(), await make_redis_runtime()
    await worker_b.bus.ensure_listening()
    assert await worker_b.router.get() == ["standin-model", "standin-small"]  # B has read the rows just now
    admin, _ = await _admin(db_scope)
    try:
        view = await _add(db_scope, worker_a, admin, name="Cloud", base_url=cloud.url, api_key=CLOUD_KEY, prefix="c/")
        await until(lambda: worker_b.router._loaded_at == 0.0, timeout=3)  # the bus message, not the 10 s reload
        assert "c/cloud-chat" in await worker_b.router.get()
        async with db_scope() as s:
            await connections.update_connection(
                session=s, settings=worker_a.settings, actor_id=admin, connection_id=view.id, enabled=False
            )
        await worker_a.router.changed()
        await until(lambda: worker_b.router._loaded_at == 0.0, timeout=3)
        assert await worker_b.router.get() == ["standin-model", "standin-small"]  # switched off everywhere
    finally:
        await worker_a.router.aclose()
        await worker_b.router.aclose()


async def test_a_key_rotation_reseals_the_connection_keys_before_the_old_key_may_go(db_scope, rt, cloud) -> None:
    admin, user = await _admin(db_scope)
    view = await _add(db_scope, rt, admin, name="Cloud", base_url=cloud.url, api_key=CLOUD_KEY, prefix="c/")
    vault = get_vault()
    old, path = vault.keyring.current_id, vault.keyring.key_file
    assert path is not None
    write_key_file(path, [new_key_text(), *(line for line in path.read_text().splitlines() if line and line[0] != "#")])
    reset_vault()  # a new current key; the old one stays to open what it sealed
    new = get_vault().keyring.current_id
    async with db_scope() as s:
        assert await sealing.sealed_by(session=s, kek_id=old) == 1  # the old key is still needed
        assert await sealing.reseal_keys(session=s) == 1
        assert (await sealing.sealed_by(session=s, kek_id=old), await sealing.sealed_by(session=s, kek_id=new)) == (
            0,
            1,
        )
        row = await s.get(Connection, view.id)
    assert row is not None and open_key(view.id, row.api_key_sealed) == CLOUD_KEY
    # The operator's commands: re-wrap the data keys (and reseal again: nothing left), retire the old key.
    await vault_cli.rotate(type("Args", (), {"rewrap_only": True, "batch": 100})())  # type: ignore[arg-type]
    await vault_cli.retire(type("Args", (), {"kek_id": old})())  # type: ignore[arg-type]
    reset_vault()
    assert get_vault().keyring.ids == [new]
    await rt.router.changed()
    started = await chat_flow.send_message(
        rt, user_id=user, conversation_id=None, text="Still there?", model="c/cloud-chat"
    )
    await started.run.wait_done()
    assert started.run.status == MessageStatus.complete  # the key opened with the new key alone


async def test_a_connection_that_hangs_holds_the_list_up_two_seconds_at_most(db_scope, rt) -> None:
    admin, _ = await _admin(db_scope)
    with StandIn(StandInConfig(models_fault="hang")) as hanging:
        await _add(db_scope, rt, admin, name="Stuck", base_url=hanging.url)
        started = asyncio.get_running_loop().time()
        assert await rt.router.get() == ["standin-model", "standin-small"]
        assert asyncio.get_running_loop().time() - started < 3.5
        stuck = next(h for h in rt.router.health() if h.name == "Stuck")
        assert stuck.ok is None  # still being asked
        await until(lambda: next(h for h in rt.router.health() if h.name == "Stuck").ok is False, timeout=8)
        assert next(h for h in rt.router.health() if h.name == "Stuck").error == "timeout"
        asked = hanging.model_requests
        started = asyncio.get_running_loop().time()
        assert await rt.router.get() == ["standin-model", "standin-small"]  # known to fail now: no wait
        assert asyncio.get_running_loop().time() - started < 1.0
        assert hanging.model_requests == asked  # nor a request on every send: asked again after 10 s
