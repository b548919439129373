"""the audit log's target holds any conversation id

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01

audit_log.target was 200 characters, but a conversation id (`c_` and the sealed sender id,
admin_api/routes/conversations.py) of a sender id near its 255 characters is about 365: an
agent's claim, reply or note in the conversation of a visitor with a long email address or
REST sender was a 500 on PostgreSQL (SQLite does not enforce the length). 1024 is what
`sender_of` accepts as a conversation id.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('audit_log') as batch:
        batch.alter_column('target', existing_type=sa.String(200), type_=sa.String(1024),
                           existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('audit_log') as batch:
        batch.alter_column('target', existing_type=sa.String(1024), type_=sa.String(200),
                           existing_nullable=True)
