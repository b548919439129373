"""agent inbox: handoff states and owners, the conversation event log, agents' notes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

Issue 14: a handoff request is queued, assigned to an agent or resolved (core/handoffs.py);
it keeps who has it, when it was claimed, first answered and resolved, what the bot knew
(summary) and the visitor's rating. Every transition is appended to `conversation_events`
(webhooks, analytics, the live stream); agents' internal notes live in `conversation_notes`.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMES = ("assigned_at", "first_reply_at", "resolved_at", "rating_asked_at", "rated_at")


def upgrade() -> None:
    with op.batch_alter_table('handoff_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('summary', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('assignee_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('assignee_name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('resolved_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('rating', sa.Integer(), nullable=True))
        for name in _TIMES:
            batch_op.add_column(sa.Column(name, core.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_handoff_requests_tenant_id_status', ['tenant_id', 'status'],
                              unique=False)
    op.execute("UPDATE handoff_requests SET status = 'queued' WHERE status = 'open'")
    op.execute("UPDATE handoff_requests SET status = 'assigned' WHERE status = 'taken'")

    op.create_table('conversation_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=False),
    sa.Column('handoff_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversation_events'))
    )
    with op.batch_alter_table('conversation_events', schema=None) as batch_op:
        batch_op.create_index('ix_conversation_events_tenant_id_id', ['tenant_id', 'id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_conversation_events_sender_id'), ['sender_id'],
                              unique=False)

    op.create_table('conversation_notes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=36), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=False),
    sa.Column('handoff_id', sa.Integer(), nullable=True),
    sa.Column('author_id', sa.String(length=64), nullable=False),
    sa.Column('author_name', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', core.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversation_notes'))
    )
    with op.batch_alter_table('conversation_notes', schema=None) as batch_op:
        batch_op.create_index('ix_conversation_notes_tenant_id_sender_id',
                              ['tenant_id', 'sender_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('conversation_notes', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_notes_tenant_id_sender_id')
    op.drop_table('conversation_notes')
    with op.batch_alter_table('conversation_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversation_events_sender_id'))
        batch_op.drop_index('ix_conversation_events_tenant_id_id')
    op.drop_table('conversation_events')
    op.execute("UPDATE handoff_requests SET status = 'open' WHERE status = 'queued'")
    op.execute("UPDATE handoff_requests SET status = 'taken' WHERE status = 'assigned'")
    with op.batch_alter_table('handoff_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_handoff_requests_tenant_id_status')
        for name in reversed(_TIMES):
            batch_op.drop_column(name)
        for name in ('rating', 'resolved_by', 'assignee_name', 'assignee_id', 'summary'):
            batch_op.drop_column(name)
