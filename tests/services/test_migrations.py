"""The alembic migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, pool, text
from sqlmodel import SQLModel, col, select

import rubin_app.models  # noqa: F401  (registers the tables)
from rubin_app.models import Role, User
from rubin_app.services import accounts, chats, export
from rubin_app.services import db as db_module
from rubin_app.services.db import session_scope
from rubin_app.services.migrate import alembic_config, is_current, script_heads, upgrade_head
from tests.conftest import async_url

PW = "correct horse battery"
TABLES = {
    "users", "conversations", "messages", "auth_sessions", "audit_events", "app_settings", "user_limits",
    "login_attempts", "api_keys", "usage_records", "webhook_endpoints", "webhook_deliveries", "user_keys",
    "alembic_version", "user_groups", "user_group_members", "totp_secrets", "recovery_codes", "pending_logins",
    "passkeys", "knowledge_bases", "knowledge_files", "knowledge_chunks", "model_connections",
}  # fmt: skip
TABLES |= {"assistants", "user_personalisation", "memories"}  # assistants and memory (issue #15)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, empty_database: Callable[[str], str]) -> str:
    """SYNC url of a brand-new, empty database."""
    return empty_database(request.param)


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _state(url: str) -> tuple[set[str], str | None, dict[str, set[str]]]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            tables = set(insp.get_table_names())
            columns = {t: {c["name"] for c in insp.get_columns(t)} for t in tables}
            revision = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return tables, revision, columns


def test_upgrade_head_creates_the_tables(empty_url: str) -> None:
    assert _state(empty_url)[0] == set()
    upgrade_head(empty_url)
    tables, revision, columns = _state(empty_url)
    assert tables == TABLES
    assert revision == _head()
    for table in SQLModel.metadata.sorted_tables:
        assert columns[table.name] == {c.name for c in table.columns}


def test_messages_keep_autoincrement_on_sqlite(empty_database: Callable[[str], str]) -> None:
    """A deleted answer's id is never given again (a stale Stop must not hit a newer answer): no migration may copy
    `messages` into a table without AUTOINCREMENT (alembic's batch mode does)."""
    url = empty_database("sqlite")
    upgrade_head(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'messages'").scalar_one()
    finally:
        engine.dispose()
    assert "AUTOINCREMENT" in sql


def test_upgrade_head_twice_is_a_no_op(empty_url: str) -> None:
    upgrade_head(empty_url)
    first = _state(empty_url)
    upgrade_head(empty_url)
    assert _state(empty_url) == first


def test_models_and_migrations_agree(empty_url: str) -> None:
    """Like `alembic check`: autogenerate against the migrated database finds nothing to do."""
    assert {d[0] for d in _diff(empty_url)} == {"add_table", "add_index"}  # the check can see differences
    upgrade_head(empty_url)
    assert _diff(empty_url) == []


def _diff(url: str) -> list:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            return compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()


def test_single_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"migrations have several heads: {heads}"


def test_heads_read_from_the_files_are_alembics(tmp_path: Path) -> None:
    """The start's check without alembic (services/migrate.py) finds the head alembic finds."""
    assert script_heads() == set(ScriptDirectory.from_config(alembic_config()).get_heads())
    (tmp_path / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (tmp_path / "b.py").write_text('revision: str = "b"\ndown_revision: str | None = "a"\n')
    assert script_heads(tmp_path) == {"b"}
    (tmp_path / "c.py").write_text("revision = make_id()\n")  # not a plain value: unsure, alembic decides
    assert script_heads(tmp_path) == set()


def test_a_database_behind_is_migrated_and_one_at_head_is_left_alone(empty_url: str) -> None:
    assert is_current(empty_url) is False
    command.upgrade(alembic_config(empty_url), FOUNDATION)
    assert is_current(empty_url) is False
    upgrade_head(empty_url)
    assert is_current(empty_url) is True
    assert _state(empty_url)[1] == _head()


FOUNDATION = "03b5fe225d83"


def _foundation_database_with_chats(url: str) -> None:
    """The schema and data of the foundation release: one "local" user owning a conversation."""
    command.upgrade(alembic_config(url), FOUNDATION)
    engine = create_engine(url, poolclass=pool.NullPool)
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO users (external_id, display_name, created_at) VALUES ('local', '', :t)"), {"t": now}
            )
            user_id = conn.execute(text("SELECT id FROM users WHERE external_id = 'local'")).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO conversations (id, user_id, title, model, title_is_auto, created_at, updated_at) "
                    "VALUES ('c0ffee', :u, 'Before accounts', 'm', false, :t, :t)"
                ),
                {"t": now, "u": user_id},
            )
            for role, content in [("user", "old question"), ("assistant", "old answer")]:
                conn.execute(
                    text(
                        "INSERT INTO messages (conversation_id, user_id, role, content, reasoning, model, status, "
                        "error, error_detail, created_at, updated_at) "
                        "VALUES ('c0ffee', :u, :role, :content, '', 'm', 'complete', '', '', :t, :t)"
                    ),
                    {"u": user_id, "role": role, "content": content, "t": now},
                )
    finally:
        engine.dispose()


async def test_first_admin_inherits_the_chats_made_before_accounts(empty_url: str, make_settings) -> None:
    """Upgrading keeps the old chats: the first person to sign up (the admin) finds them; the next one does not."""
    _foundation_database_with_chats(empty_url)
    upgrade_head(empty_url)
    url = async_url(empty_url)
    settings = make_settings()
    try:
        async with session_scope(url) as s:
            legacy = (await s.exec(select(User))).all()
            assert [(u.external_id, u.provider) for u in legacy] == [("local", "legacy")]
        async with session_scope(url) as s:
            admin = await accounts.sign_up_local(session=s, settings=settings, email="admin@example.com", password=PW)
        async with session_scope(url) as s:
            second = await accounts.sign_up_local(session=s, settings=settings, email="next@example.com", password=PW)
        assert (admin.role, second.role) == (Role.admin, Role.user)
        assert admin.id is not None and second.id is not None

        async with session_scope(url) as s:
            assert [u.email for u in (await s.exec(select(User).order_by(col(User.id)))).all()] == [
                "admin@example.com", "next@example.com",
            ]  # fmt: skip
            mine = await chats.list_conversations(session=s, user_id=admin.id)
            assert [c.title for c in mine] == ["Before accounts"]
            messages = await chats.list_messages(session=s, user_id=admin.id, conversation_id="c0ffee")
            assert [m.content for m in messages] == ["old question", "old answer"]
            assert await chats.list_conversations(session=s, user_id=second.id) == []
            exported = await export.export_data(session=s, user_id=second.id)
            assert exported["conversations"] == []
    finally:
        await db_module.dispose_all()
