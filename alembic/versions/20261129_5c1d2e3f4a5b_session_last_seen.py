"""session last seen (idle timeout)

Revision ID: 5c1d2e3f4a5b
Revises: 72ab028ad636
Create Date: 2026-11-29 10:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '5c1d2e3f4a5b'
down_revision: str | None = '72ab028ad636'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.drop_column('last_seen_at')
