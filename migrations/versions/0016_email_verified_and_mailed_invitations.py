"""accounts record whether their email was proven; invitations whether their link was mailed

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01

Without SMTP_URL an invitation's link goes to the inviting owner, and whoever opens it makes
the account of the invited email; accounts are global, so one shop's owner could make an
account in someone's name that a second shop's invitation then met (admin_api/people.py).
users.email_verified_at says when someone showed they read the email's inbox; invites.emailed
that a link went only to that inbox. Existing accounts and pending invitations are left
unproven and not mailed: which were is not known, and a mailed invitation with the account's
password proves it at the next use.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('email_verified_at', core.db.UtcDateTime(timezone=True),
                                   nullable=True))
    with op.batch_alter_table('invites') as batch:
        batch.add_column(sa.Column('emailed', sa.Boolean(), nullable=False,
                                   server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('invites') as batch:
        batch.drop_column('emailed')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('email_verified_at')
