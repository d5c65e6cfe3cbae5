"""Salts of subject commitments in the hub database (hubs on several machines share them on PostgreSQL).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table('salts',
    sa.Column('commitment', sa.String(length=64), nullable=False),
    sa.Column('salt', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('commitment')
    )


def downgrade() -> None:
    """Revert this migration."""
    op.drop_table('salts')
