"""Encryption at rest, checked where an attacker would look: the database file and rows, Redis, a copy."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from rubin_app.config import get_settings
from rubin_app.services import accounts, chat_flow, chats, export
from rubin_app.services.cache import CachedAnswer
from rubin_app.services.db import session_scope
from rubin_app.services.runtime import Runtime
from rubin_app.vault import cli as vault_cli
from rubin_app.vault import startup
from rubin_app.vault.keyring import KeyringError, new_key_text
from rubin_app.vault.models import UserKey
from rubin_app.vault.sealing import UNREADABLE, UnreadableValue, UserCipher
from rubin_app.vault.service import get_vault, reset_vault
from tests.factories import make_user
from tests.services.helpers import history, new_user

MODEL = "standin-model"
MARKER = "Ящерица-marker-7Q2"  # Cyrillic and ASCII: found in the raw bytes if stored in clear


async def _chat(rt: Runtime, user_id: int, text_: str) -> chat_flow.Started:
    started = await chat_flow.send_message(rt, user_id=user_id, conversation_id=None, text=text_, model=MODEL)
    assert await started.run.wait_done(timeout=5)
    return started


async def _raw_rows() -> list[str]:
    """Every text the content tables hold, as the database returns it (no ORM hooks)."""
    async with session_scope(read_only=True) as s:
        rows = (await s.exec(text("SELECT content || ' ' || reasoning FROM messages"))).all()  # type: ignore[call-overload]
        rows += (await s.exec(text("SELECT title FROM conversations"))).all()  # type: ignore[call-overload]
        rows += (await s.exec(text("SELECT payload FROM webhook_deliveries"))).all()  # type: ignore[call-overload]
    return [str(r[0]) for r in rows]


async def test_chats_are_ciphertext_in_the_database_and_text_for_their_owner(runtime: Runtime, db_url: str) -> None:
    user_id = await new_user()
    started = await _chat(runtime, user_id, f"Tell me about {MARKER}")
    answer = started.run.text
    assert answer
    raw = await _raw_rows()
    assert raw and all(MARKER not in r and answer not in r for r in raw)
    assert any(r.startswith("$rv1$") for r in raw)
    if db_url.startswith("sqlite"):  # the file itself, WAL included
        path = Path(db_url.split("///", 1)[1])
        blob = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert MARKER.encode() not in blob and answer.encode() not in blob
    # The owner reads plain text everywhere: the chat, its title, the export.
    messages = await history(user_id, started.conversation.id)
    assert [m.content for m in messages] == [f"Tell me about {MARKER}", answer]
    async with session_scope() as s:
        listed = await chats.list_conversations(session=s, user_id=user_id, query=MARKER.lower())
        assert [c.title for c in listed] == [started.conversation.title] and MARKER in listed[0].title
        dump = await export.export_data(session=s, user_id=user_id)
    assert dump["conversations"][0]["messages"][1]["content"] == answer


async def test_another_users_ciphertext_does_not_open_in_my_rows(runtime: Runtime) -> None:
    """Values are bound to their owner and column: copying one into another user's row shows the marker."""
    alice, bob = await new_user(), await new_user()
    a = await _chat(runtime, alice, f"secret of alice {MARKER}")
    b = await _chat(runtime, bob, "hello from bob")
    async with session_scope() as s:
        await s.exec(  # type: ignore[call-overload]
            text("UPDATE messages SET content = (SELECT content FROM messages WHERE id = :src) WHERE id = :dst"),
            params={"src": a.messages[0].id, "dst": b.messages[0].id},
        )
    reset_vault()  # a fresh process
    bob_view = await history(bob, b.conversation.id)
    assert bob_view[0].content == UNREADABLE  # one row unreadable, said so; the rest of the chat intact
    assert bob_view[1].content == b.run.text
    assert (await history(alice, a.conversation.id))[0].content == f"secret of alice {MARKER}"


async def test_a_damaged_value_spoils_one_message_not_the_chat(runtime: Runtime) -> None:
    user_id = await new_user()
    started = await _chat(runtime, user_id, "first question")
    async with session_scope() as s:
        await s.exec(  # type: ignore[call-overload]
            text("UPDATE messages SET content = substr(content, 1, length(content) - 3) || 'AAA' WHERE id = :id"),
            params={"id": started.messages[1].id},
        )
    reset_vault()
    view = await history(user_id, started.conversation.id)
    assert [m.content for m in view] == ["first question", UNREADABLE]


async def test_the_response_cache_and_live_relay_keep_no_text_in_redis(
    make_redis_runtime: Any, redis_client: Any
) -> None:
    rt: Runtime = await make_redis_runtime(cache_ttl=600)
    assert await rt.cache.put("k1", CachedAnswer(f"cached {MARKER}", "thinking " + MARKER))
    hit = await rt.cache.get("k1")
    assert hit is not None and hit.text == f"cached {MARKER}"
    user_id = await new_user()
    started = await _chat(rt, user_id, f"live {MARKER}")
    await asyncio.sleep(0.2)  # the relay's last entries
    found = []
    async for key in redis_client.scan_iter(count=500):
        kind = await redis_client.type(key)
        if kind == b"string":
            found.append(await redis_client.get(key))
        elif kind == b"stream":
            found += [v for _, fields in await redis_client.xrange(key) for v in fields.values()]
    blob = b"\n".join(v for v in found if isinstance(v, bytes))
    assert b"$rv1$" in blob  # something was written, sealed
    assert MARKER.encode() not in blob and started.run.text.encode() not in blob


async def test_a_wrong_key_refuses_to_start_and_names_the_fix(runtime: Runtime, app_env: Any, db_url: str) -> None:
    user_id = await new_user()
    await _chat(runtime, user_id, "kept")
    app_env(database_url=db_url, encryption_key=new_key_text())  # not the key file's key
    with pytest.raises(KeyringError, match="Wrong or lost key"):
        await startup.prepare()


async def test_a_lost_key_file_stops_the_start_and_leaves_no_new_key_behind(
    runtime: Runtime, app_env: Any, db_url: str
) -> None:
    """The data needs the old key: a fresh key file would encrypt new data with a key the old data lacks."""
    await _chat(runtime, await new_user(), "kept")
    path = get_settings().data_dir / "encryption.key"
    path.rename(path.with_name("moved-away.key"))
    app_env(database_url=db_url)
    with pytest.raises(KeyringError, match="Wrong or lost key"):
        await startup.prepare()
    assert not path.exists()
    path.with_name("moved-away.key").rename(path)  # put back: the start succeeds and everything reads
    app_env(database_url=db_url)
    await startup.prepare()


async def test_a_key_file_others_can_read_is_refused(runtime: Runtime, app_env: Any, db_url: str) -> None:
    path = get_settings().data_dir / "encryption.key"
    await new_user()
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
    os.chmod(path, 0o644)
    app_env(database_url=db_url)
    with pytest.raises(KeyringError, match="chmod 600"):
        await startup.prepare()


async def test_rotation_online_while_users_chat(runtime: Runtime, app_env: Any, db_url: str) -> None:
    users = [await new_user() for _ in range(6)]
    old = get_vault().keyring.current_id

    async def chatting() -> list[chat_flow.Started]:
        return [await _chat(runtime, u, f"during rotation {i} {MARKER}") for i, u in enumerate(users)]

    args = type("Args", (), {"rewrap_only": False, "batch": 2})()
    during, _ = await asyncio.gather(chatting(), vault_cli.rotate(args))  # type: ignore[arg-type]
    new = get_vault().keyring.current_id
    assert new != old and get_vault().keyring.ids == [new, old]
    # Another process starting now (fresh keys from the file) reads everything, old and new.
    app_env(database_url=db_url)
    counts = await startup.prepare()
    assert counts is not None
    for started in during:
        view = await history(started.run.user_id, started.conversation.id)
        assert view[1].content == started.run.text and MARKER in view[0].content
    # Every data key is re-wrapped by the new key (the rotation ran again for keys made meanwhile), so the
    # old key can be retired; retiring the current one is refused.
    await vault_cli.rotate(type("Args", (), {"rewrap_only": True, "batch": 100})())  # type: ignore[arg-type]
    with pytest.raises(SystemExit, match="current key"):
        await vault_cli.retire(type("Args", (), {"kek_id": new})())  # type: ignore[arg-type]
    await vault_cli.retire(type("Args", (), {"kek_id": old})())  # type: ignore[arg-type]
    reset_vault()
    assert get_vault().keyring.ids == [new]
    assert (await history(users[0], during[0].conversation.id))[1].content == during[0].run.text


async def test_deleting_a_user_shreds_their_data_key(runtime: Runtime) -> None:
    """A copy of their rows taken before (an old backup) no longer opens: their data key is gone."""
    async with session_scope() as s:
        admin = await make_user(s)
    user_id = await new_user()
    started = await _chat(runtime, user_id, f"shred me {MARKER}")
    async with session_scope(read_only=True) as s:
        copy = (await s.exec(text("SELECT content FROM messages WHERE user_id = :u"), params={"u": user_id})).all()  # type: ignore[call-overload]
    async with session_scope() as s:
        await accounts.delete_account(session=s, user_id=user_id, actor_id=user_id)
    reset_vault()
    vault = get_vault()
    async with session_scope(read_only=True) as s:
        keys = (await s.exec(select(UserKey))).all()
    assert keys and all(k.user_id != user_id for k in keys)  # theirs is gone; the others' remain
    for key in keys:  # no data key left in the instance opens the old copy
        data_key = vault.keyring.unwrap(key.kek_id, key.wrapped, f"user:{key.user_id}")
        cipher = UserCipher(user_id, {key.id or 0: data_key})
        with pytest.raises(UnreadableValue):
            cipher.open("messages.content", copy[0][0])
    assert admin.id is not None and started.run.text


async def test_legacy_clear_text_is_sealed_at_start(runtime: Runtime, app_env: Any, db_url: str) -> None:
    """Rows written in clear by an earlier version are read as they are, then sealed by the start pass."""
    user_id = await new_user()
    started = await _chat(runtime, user_id, "to be sealed")
    async with session_scope() as s:
        await s.exec(text("UPDATE messages SET content = :c WHERE id = :id"),  # type: ignore[call-overload]
                     params={"c": f"legacy {MARKER}", "id": started.messages[0].id})  # fmt: skip
    assert (await history(user_id, started.conversation.id))[0].content == f"legacy {MARKER}"
    assert any(MARKER in r for r in await _raw_rows())
    await startup.prepare()
    assert all(MARKER not in r for r in await _raw_rows())
    assert (await history(user_id, started.conversation.id))[0].content == f"legacy {MARKER}"
