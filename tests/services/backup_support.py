"""Shared parts of the backup tests: two instances (settings), a populated source, what must come back."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import select

from rubin_app.accounts import api_keys, groups
from rubin_app.config import Settings, get_settings
from rubin_app.models import AppSetting, MessageRole
from rubin_app.services import accounts, chats
from rubin_app.services.db import dispose_all, session_scope
from rubin_app.vault.keyring import new_key_text
from rubin_app.webhooks.crypto import SecretBox
from rubin_app.webhooks.models import WebhookEndpoint
from rubin_app.webhooks.schemas import EndpointCreate
from rubin_app.webhooks.service import Actor, create_endpoint

PASSWORD = "correct horse battery 9"
WORDS = ["Привет! Секретный план на завтра.", "Here is the plan: **ship it** on Friday."]


@dataclass
class Keys:
    """The secrets an instance and its backups need (never in a backup)."""

    backup: str = field(default_factory=lambda: base64.b64encode(os.urandom(32)).decode())
    encryption: str = field(default_factory=new_key_text)
    secret: str = field(default_factory=lambda: os.urandom(24).hex())


def use_instance(app_env: Callable[..., None], *, url: str, data_dir: Path, keys: Keys, **extra: Any) -> Settings:
    """Point the settings at one instance (database, DATA_DIR, keys) and return them."""
    values = {"backup_key": keys.backup, "encryption_key": keys.encryption, "secret_key": keys.secret}
    app_env(database_url=url, data_dir=str(data_dir), webhook_allow_private="true", **{**values, **extra})
    return get_settings()


@dataclass
class Source:
    """What the populated source instance holds (and the plain secrets shown once)."""

    admin_id: int
    user_id: int
    chat_id: str
    api_key: str
    webhook_secret: str
    group_id: int


async def populate(settings: Settings) -> Source:
    """Accounts with passwords, a sealed chat, an API key, a webhook, a group and a settings row."""
    async with session_scope() as session:
        admin = await accounts.sign_up_local(session=session, settings=settings, email="ada@example.com",
                                             password=PASSWORD)  # fmt: skip
        user = await accounts.sign_up_local(session=session, settings=settings, email="bob@example.com",
                                            password=PASSWORD + "!")  # fmt: skip
    assert admin.id is not None and user.id is not None
    async with session_scope() as session:
        chat = await chats.create_conversation(session=session, user_id=admin.id, model="m", title="Plans")
        for role, words in zip((MessageRole.user, MessageRole.assistant), WORDS, strict=True):
            await chats.create_message(session=session, user_id=admin.id, conversation_id=chat.id, role=role,
                                       content=words)  # fmt: skip
        _row, key = await api_keys.create_key(session=session, user_id=user.id, name="ci", scopes="chat")
        hook = await create_endpoint(session, actor=Actor(admin.id, True), settings=settings,
                                     secret_key=settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
                                     data=EndpointCreate(url="http://127.0.0.1:9/hook"))  # fmt: skip
        group = await groups.create_group(session=session, actor_id=admin.id, name="Team")
        assert group.id is not None
        await groups.add_member(session=session, actor_id=admin.id, group_id=group.id, user_id=user.id)
        session.add(AppSetting(key="backup_test_marker", value='"kept"'))
    return Source(admin.id, user.id, chat.id, key, hook.secret, group.id)


async def write_chats(stop: asyncio.Event, user_id: int, written: list[int]) -> None:
    """Keep inserting chats of two messages each (one transaction per chat) until `stop` is set."""
    while not stop.is_set():
        async with session_scope() as session:
            chat = await chats.create_conversation(session=session, user_id=user_id, model="m", title="load")
            for role in (MessageRole.user, MessageRole.assistant):
                await chats.create_message(session=session, user_id=user_id, conversation_id=chat.id, role=role,
                                           content=f"load {len(written)}")  # fmt: skip
        written.append(1)
        await asyncio.sleep(0.005)


def dump_amid_writes(
    dump: Callable[..., Any], written: list[int], *, writes: int = 2, timeout: float = 20.0
) -> Callable[..., Any]:
    """Wrap a backup's database dump (it runs in the backup's thread) so that the writer surely writes while
    the backup runs: wait until it has committed `writes` more chats, dump, and wait for `writes` more again.
    The dump itself still catches the writer at an arbitrary moment (between two chats or inside one);
    without the waits a fast one-step copy can begin and end before the writer's next chat on a loaded
    machine."""

    def wait_for(count: int, when: str) -> None:
        deadline = time.monotonic() + timeout
        while len(written) < count:  # appended on the event loop's thread after each chat commits
            if time.monotonic() > deadline:
                raise TimeoutError(f"the writer wrote {len(written)} chats, not {count}, in {timeout:.0f} s "
                                   f"{when} the dump: is it stuck or dead?")  # fmt: skip
            time.sleep(0.005)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wait_for(len(written) + writes, "before")
        out = dump(*args, **kwargs)
        wait_for(len(written) + writes, "after")
        return out

    return wrapper


async def check_restored(settings: Settings, src: Source) -> None:
    """Everything of `populate` is back and works on the restored instance."""
    async with session_scope() as session:
        user = await accounts.sign_in_local(session=session, settings=settings, email="ada@example.com",
                                            password=PASSWORD)  # fmt: skip
        assert user.id == src.admin_id
    async with session_scope() as session:
        messages = await chats.list_messages(session=session, user_id=src.admin_id, conversation_id=src.chat_id)
        assert [m.content for m in messages] == WORDS
        assert await chats.list_messages(session=session, user_id=src.user_id, conversation_id=src.chat_id) == []
        raw = (await session.exec(text("SELECT content FROM messages WHERE conversation_id = :c"),  # type: ignore[call-overload]
                                  params={"c": src.chat_id})).all()  # fmt: skip
        assert raw and all(r[0].startswith("$rv1$") for r in raw)  # still sealed at rest
        principal, error = await api_keys.resolve_key(session=session, key=src.api_key)
        assert error == "" and principal is not None and principal.user_id == src.user_id
        hook = (await session.exec(select(WebhookEndpoint))).one()
        assert SecretBox(settings.secret_key.get_secret_value()).decrypt(hook.secret) == src.webhook_secret  # type: ignore[union-attr]
        views = await groups.list_groups(session=session, actor_id=src.admin_id)
        assert [(v.name, [m[0] for m in v.members]) for v in views] == [("Team", [src.user_id])]
        assert (await session.get(AppSetting, "backup_test_marker")).value == '"kept"'  # type: ignore[union-attr]


def tree_digest(*paths: Path) -> dict[str, str]:
    """SHA-256 of every file under the paths (to prove that nothing changed)."""
    out: dict[str, str] = {}
    for root in paths:
        for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []:
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


async def table_counts() -> dict[str, int]:
    """Rows of users, conversations and messages in the current instance's database."""
    out = {}
    async with session_scope() as session:
        for name in ("users", "conversations", "messages"):
            out[name] = int((await session.exec(text(f"SELECT count(*) FROM {name}"))).one()[0])  # type: ignore[call-overload]
    await dispose_all()
    return out
