"""training drafts: a shop's own training data in Rasa YAML, one row per shop, kind and name

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28

Issue 15: designers edit a shop's training data (nlu, rules, stories, domain, tests) as drafts
over the base every shop shares (admin_api/training/drafts.py).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('training_drafts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=True),
    sa.Column('updated_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                            name=op.f('fk_training_drafts_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_drafts')),
    sa.UniqueConstraint('tenant_id', 'kind', 'name',
                        name=op.f('uq_training_drafts_tenant_id'))
    )
    with op.batch_alter_table('training_drafts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_drafts_tenant_id'), ['tenant_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('training_drafts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_drafts_tenant_id'))
    op.drop_table('training_drafts')
