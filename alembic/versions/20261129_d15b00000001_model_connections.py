"""model connections (several OpenAI-compatible servers, sealed API keys, capability overrides)

Revision ID: d15b00000001
Revises: d15c00000001
Create Date: 2026-11-29 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "d15b00000001"
down_revision: str | None = "d15c00000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "model_connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("base_url", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("api_key_sealed", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("models", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("capabilities", sqlmodel.sql.sqltypes.AutoString(length=8000), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("model_connections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_connections_name"), ["name"], unique=True)


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("model_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_connections_name"))
    op.drop_table("model_connections")
