"""user data keys (encryption at rest); conversation titles become TEXT (sealed titles are longer)

Revision ID: d13e1a000000
Revises: a7f3c9e1d2b4
Create Date: 2026-11-29 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'd13e1a000000'
down_revision: str | None = 'a7f3c9e1d2b4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table('user_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kek_id', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('wrapped', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('rewrapped_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True,
    )
    op.create_index(op.f('ix_user_keys_user_id'), 'user_keys', ['user_id'], unique=False)
    op.create_index(op.f('ix_user_keys_kek_id'), 'user_keys', ['kek_id'], unique=False)
    with op.batch_alter_table('conversations') as batch:
        batch.alter_column('title', type_=sa.Text(), existing_type=sqlmodel.sql.sqltypes.AutoString(length=200),
                           existing_nullable=False)


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table('conversations') as batch:
        batch.alter_column('title', type_=sqlmodel.sql.sqltypes.AutoString(length=200), existing_type=sa.Text(),
                           existing_nullable=False)
    op.drop_index(op.f('ix_user_keys_kek_id'), table_name='user_keys')
    op.drop_index(op.f('ix_user_keys_user_id'), table_name='user_keys')
    op.drop_table('user_keys')
