"""billing: subscriptions, Stripe events, billed conversations, meter events, usage notices

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28

Issue 16: shops pay through Stripe (billing/). A shop's subscription as Stripe's webhooks
told it, every verified event by its id (handled once), the conversations its plan counts,
usage waiting for Stripe's meters (identifier: Stripe's dedupe key), limit warnings mailed.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('billing_accounts',
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('stripe_customer_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_subscription_id', sa.String(length=255), nullable=True),
    sa.Column('plan', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('current_period_start', core.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('current_period_end', core.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('past_due_since', core.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('state_event_created', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_billing_accounts')),
    sa.UniqueConstraint('stripe_customer_id',
                        name=op.f('uq_billing_accounts_stripe_customer_id'))
    )
    with op.batch_alter_table('billing_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_accounts_stripe_subscription_id'),
                              ['stripe_subscription_id'], unique=False)

    op.create_table('stripe_events',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('handled_at', core.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_events'))
    )
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stripe_events_tenant_id'), ['tenant_id'],
                              unique=False)

    op.create_table('billed_conversations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('visitor', sa.String(length=200), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('started_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_message_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('over_limit', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billed_conversations'))
    )
    with op.batch_alter_table('billed_conversations', schema=None) as batch_op:
        batch_op.create_index('ix_billed_conversations_tenant_id_visitor',
                              ['tenant_id', 'visitor'], unique=False)
        batch_op.create_index('ix_billed_conversations_tenant_id_month',
                              ['tenant_id', 'month'], unique=False)

    op.create_table('meter_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('identifier', sa.String(length=100), nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('meter', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('occurred_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('reported_at', core.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meter_events')),
    sa.UniqueConstraint('identifier', name=op.f('uq_meter_events_identifier'))
    )
    with op.batch_alter_table('meter_events', schema=None) as batch_op:
        batch_op.create_index('ix_meter_events_reported_at_id', ['reported_at', 'id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_meter_events_tenant_id'), ['tenant_id'],
                              unique=False)

    op.create_table('usage_notices',
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('limit', sa.String(length=32), nullable=False),
    sa.Column('threshold', sa.Integer(), nullable=False),
    sa.Column('sent_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'month', 'limit', 'threshold',
                            name=op.f('pk_usage_notices'))
    )


def downgrade() -> None:
    op.drop_table('usage_notices')
    with op.batch_alter_table('meter_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meter_events_tenant_id'))
        batch_op.drop_index('ix_meter_events_reported_at_id')
    op.drop_table('meter_events')
    with op.batch_alter_table('billed_conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_billed_conversations_tenant_id_month')
        batch_op.drop_index('ix_billed_conversations_tenant_id_visitor')
    op.drop_table('billed_conversations')
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stripe_events_tenant_id'))
    op.drop_table('stripe_events')
    with op.batch_alter_table('billing_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_accounts_stripe_subscription_id'))
    op.drop_table('billing_accounts')
