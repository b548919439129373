"""public edge: api keys, verification failures, leases, rate limits, llm usage

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

The public edge (issue 12): shops' API keys (REST now, the admin API's scopes later), failed
identity checks counted across senders, a lease on each provider message being answered, each
shop's verification expiry, rate limits and monthly LLM token budget, and each LLM answer's
spend. Existing tenants get the defaults; existing messages no lease.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('llm_usage',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('created_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_llm_usage'))
    )
    with op.batch_alter_table('llm_usage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_llm_usage_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_llm_usage_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('verification_failures',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_started_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('locked_until', core.db.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_verification_failures'))
    )
    with op.batch_alter_table('verification_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_verification_failures_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('secret_hash', sa.String(length=128), nullable=False),
    sa.Column('created_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', core.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', core.db.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_api_keys_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_keys_prefix'))
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', core.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_index(batch_op.f('ix_messages_lease_expires_at'), ['lease_expires_at'], unique=False)

    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verification_expiry_minutes', sa.Integer(), server_default='30', nullable=False))
        batch_op.add_column(sa.Column('rate_per_client', sa.Integer(), server_default='30', nullable=False))
        batch_op.add_column(sa.Column('rate_per_conversation', sa.Integer(), server_default='20', nullable=False))
        batch_op.add_column(sa.Column('rate_per_shop', sa.Integer(), server_default='600', nullable=False))
        batch_op.add_column(sa.Column('llm_monthly_token_budget', sa.Integer(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('llm_monthly_token_budget')
        batch_op.drop_column('rate_per_shop')
        batch_op.drop_column('rate_per_conversation')
        batch_op.drop_column('rate_per_client')
        batch_op.drop_column('verification_expiry_minutes')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_messages_lease_expires_at'))
        batch_op.drop_column('attempts')
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('lease_owner')

    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_tenant_id'))

    op.drop_table('api_keys')
    with op.batch_alter_table('verification_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_verification_failures_tenant_id'))

    op.drop_table('verification_failures')
    with op.batch_alter_table('llm_usage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_llm_usage_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_llm_usage_created_at'))

    op.drop_table('llm_usage')
