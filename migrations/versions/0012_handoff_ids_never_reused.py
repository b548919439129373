"""handoff ids never reused: AUTOINCREMENT for handoff_requests, conversation_events and
conversation_notes on SQLite

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

An INTEGER PRIMARY KEY without AUTOINCREMENT is SQLite's rowid, and a new row takes the
largest id left + 1: once a visitor's erasure (or the retention sweep) deleted the newest
handoff, the next visitor's handoff got its id, so shops' webhook events and the agents'
inbox carried one handoff_id for two people (the walkthrough's finding 19). The event log's
ids are webhooks' cursor (admin_api/webhooks.py reads `id > last_event_id`): reused ids
after an erasure would never be sent. AUTOINCREMENT makes SQLite keep the largest id ever
given (sqlite_sequence). PostgreSQL's sequences never hand out an id twice: nothing to do
there. Batch mode copies each table into a new one with its rows, ids and indexes.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("handoff_requests", "conversation_events", "conversation_notes")


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(False)
