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
    """Two columns with empty defaults: existing rows need no rewrite."""
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("knowledge", sa.String(2000), nullable=False, server_default=sa.text("''")))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("annotations", sa.Text(), nullable=False, server_default=sa.text("''")))


def downgrade() -> None:
    """Drop the columns."""
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("annotations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("knowledge")
