"""channels: deliveries and tenant widget

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

One row per message sent through a provider (status callbacks move it forward), when each
provider message was handled, and each tenant's public web-widget key and look. Existing tenants get no widget until one is set.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=True),
    sa.Column('message_pk', sa.Integer(), nullable=True),
    sa.Column('provider_message_id', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error_code', sa.String(length=32), nullable=True),
    sa.Column('error_detail', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('provider', 'provider_message_id', name=op.f('uq_deliveries_provider'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliveries_sender_id'), ['sender_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handled_at', core.db.UtcDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('widget_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('widget_theme', sa.JSON(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_tenants_widget_key'), ['widget_key'])



def downgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_tenants_widget_key'), type_='unique')
        batch_op.drop_column('widget_theme')
        batch_op.drop_column('widget_key')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('handled_at')

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_deliveries_sender_id'))

    op.drop_table('deliveries')
