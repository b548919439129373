"""analytics count not-answered conversations; knowledge documents keep their size

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01

analytics_days.not_answered: conversations without a human where the bot could not answer at
least once, so containment counts the conversations the Conversations tab calls contained
(core/conversations.py `conversation_outcome`). Days rolled up before stay null until a
summary needs them, which counts them from the messages still kept (admin_api/analytics.py).

knowledge_documents.size: bytes of the file as ingested, whichever way it came (an upload or
the command-line tool / `make run`); null for documents ingested before, until their next
ingestion.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('analytics_days') as batch:
        batch.add_column(sa.Column('not_answered', sa.Integer(), nullable=True))
    with op.batch_alter_table('knowledge_documents') as batch:
        batch.add_column(sa.Column('size', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('knowledge_documents') as batch:
        batch.drop_column('size')
    with op.batch_alter_table('analytics_days') as batch:
        batch.drop_column('not_answered')
