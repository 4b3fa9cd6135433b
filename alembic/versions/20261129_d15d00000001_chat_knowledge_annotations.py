"""a chat's knowledge choice and an answer's annotations (numbered sources, memories added)

Revision ID: d15d00000001
Revises: d15a00000001
Create Date: 2026-11-29 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d15d00000001"
down_revision: str | None = "d15a00000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Two columns with empty defaults: existing rows need no rewrite. Plain ADD COLUMN (not batch mode): a batch
    would copy `messages` into a new table without AUTOINCREMENT, and deleted answers' ids would come back."""
    op.add_column("conversations", sa.Column("knowledge", sa.String(2000), nullable=False, server_default=sa.text("''")))
    op.add_column("messages", sa.Column("annotations", sa.Text(), nullable=False, server_default=sa.text("''")))


def downgrade() -> None:
    """Drop the columns."""
    op.drop_column("messages", "annotations")
    op.drop_column("conversations", "knowledge")
