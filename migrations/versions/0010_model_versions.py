"""model versions: a shop's own trained models and the one it serves

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29

Issue 15: POST /models trains a version from a snapshot of the shop's drafts (model_versions);
POST /models/{id}/activate records the shop's active version (shop_models, null = the base
model). admin_api/training/models.py.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('model_versions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('stage', sa.String(length=200), nullable=True),
    sa.Column('queue_position', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', core.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('snapshot_sha256', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=200), nullable=True),
    sa.Column('training_seconds', sa.Float(), nullable=True),
    sa.Column('size_bytes', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('evaluation', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                            name=op.f('fk_model_versions_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions'))
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index('ix_model_versions_tenant_id_created_at',
                              ['tenant_id', 'created_at'], unique=False)

    op.create_table('shop_models',
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('version_id', sa.String(length=32), nullable=True),
    sa.Column('activated_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('activated_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                            name=op.f('fk_shop_models_tenant_id_tenants')),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'],
                            name=op.f('fk_shop_models_version_id_model_versions')),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_shop_models'))
    )


def downgrade() -> None:
    op.drop_table('shop_models')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_model_versions_tenant_id_created_at')
    op.drop_table('model_versions')
