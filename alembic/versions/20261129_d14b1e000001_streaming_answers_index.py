"""streaming answers index (the recovery scan of unfinished answers)

Revision ID: d14b1e000001
Revises: d13a2f000001
Create Date: 2026-11-29 19:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d14b1e000001"
down_revision: str | None = "d13a2f000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = sa.text("status = 'streaming'")


def upgrade() -> None:
    """A partial index of the answers being generated (a handful of rows in a table of millions)."""
    op.create_index("ix_messages_streaming", "messages", ["id"], sqlite_where=_WHERE, postgresql_where=_WHERE)


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_messages_streaming", table_name="messages")
