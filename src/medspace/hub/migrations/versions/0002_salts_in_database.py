"""Salts of subject commitments in the hub database (hubs on several machines share them on PostgreSQL); an
index of each hospital's consent changes in order (a node's replica and the consent state a task runs under).

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
    op.create_index('ix_consents_hospital_seq', 'consents', ['hospital', 'seq'], unique=False)


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index('ix_consents_hospital_seq', table_name='consents')
    op.drop_table('salts')
