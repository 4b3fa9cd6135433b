"""a question's send key: the page's own id for one send, so a send repeated after a reconnect is saved once

Revision ID: d16a00000001
Revises: d15b00000001
Create Date: 2026-11-30 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d16a00000001"
down_revision: str | None = "d15b00000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """A nullable column (existing rows need no rewrite; plain ADD COLUMN, not batch mode: a batch would copy
    `messages` without AUTOINCREMENT) and a unique index per user (NULLs never collide)."""
    op.add_column("messages", sa.Column("send_key", sa.String(64), nullable=True))
    op.create_index("ux_messages_user_send_key", "messages", ["user_id", "send_key"], unique=True)


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("ux_messages_user_send_key", table_name="messages")
    op.drop_column("messages", "send_key")
