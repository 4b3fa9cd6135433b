"""groups, permissions and admin re-authentication

Revision ID: d13d5f000004
Revises: d13e1a000000
Create Date: 2026-11-29 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "d13d5f000004"
down_revision: str | None = "d13e1a000000"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "user_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("models", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("api_keys", sa.Boolean(), nullable=False),
        sa.Column("webhooks", sa.Boolean(), nullable=False),
        sa.Column("knowledge_sharing", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("user_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_groups_name"), ["name"], unique=True)

    op.create_table(
        "user_group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("added_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["user_groups.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "user_id"),
    )
    with op.batch_alter_table("user_group_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_group_members_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reauth_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_column("reauth_at")
    with op.batch_alter_table("user_group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_group_members_user_id"))
    op.drop_table("user_group_members")
    with op.batch_alter_table("user_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_groups_name"))
    op.drop_table("user_groups")
