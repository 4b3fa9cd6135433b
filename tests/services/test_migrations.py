"""The alembic migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, pool
from sqlmodel import SQLModel

import rubin_app.models  # noqa: F401  (registers the tables)
from rubin_app.services.migrate import alembic_config, upgrade_head

TABLES = {"users", "conversations", "messages", "auth_sessions", "audit_events", "app_settings", "alembic_version"}


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
