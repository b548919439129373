"""message and delivery ids never reused: AUTOINCREMENT for messages, deliveries, webhooks and
webhook_deliveries on SQLite

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02

As 0012 did for handoffs: an INTEGER PRIMARY KEY without AUTOINCREMENT is SQLite's rowid, and
a new row takes the largest id left + 1. After a visitor's erasure or the retention sweep
deleted the newest messages and deliveries, the next rows got their ids again: a REST
client's poll cursor (`after`, from message ids: connectors/channels/rest/routes.py) already
above them never listed those messages, and a kept message or delivery id (a delivery's
`message_pk`, an agent reply's message id) could name another visitor's row. Webhook
deliveries go to shops with their id (X-Switchboard-Delivery, the shop's dedupe key) and are
pruned after KEEP; a subscription's id is in the API's URLs and the audit log. PostgreSQL's
sequences never hand out an id twice: nothing to do there.

Batch mode copies each table into a new one and drops the old one. Our SQLite connections
enforce foreign keys (core/sqlite.py), inside the migration's transaction where the pragma
cannot be turned off, and dropping a table deletes the rows of tables that reference it ON
DELETE CASCADE (webhooks -> webhook_deliveries -> webhook_attempts): those rows are kept aside
in temporary tables and put back once the table is recreated.
"""
from collections.abc import Sequence

from alembic import op
from sqlalchemy.engine import Connection

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("messages", "deliveries", "webhooks", "webhook_deliveries")


def _referencing(bind: Connection, table: str) -> list[str]:
    """The tables whose rows go when `table`'s do (ON DELETE CASCADE, transitively), parents
    before their children."""
    names = [name for (name,) in bind.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    found: list[str] = []
    parents = [table]
    while parents:
        parent = parents.pop(0)
        for name in names:
            keys = bind.exec_driver_sql(f'PRAGMA foreign_key_list("{name}")').mappings()
            if name not in found and any(k["table"] == parent and k["on_delete"] == "CASCADE"
                                         for k in keys):
                found.append(name)
                parents.append(name)
    return found


def _recreate(autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for table in TABLES:
        kept = _referencing(bind, table)
        for child in kept:
            bind.exec_driver_sql(f'CREATE TEMP TABLE "keep_{child}" AS SELECT * FROM "{child}"')
        for child in reversed(kept):
            bind.exec_driver_sql(f'DELETE FROM "{child}"')
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass
        for child in kept:
            bind.exec_driver_sql(f'INSERT INTO "{child}" SELECT * FROM temp."keep_{child}"')
            bind.exec_driver_sql(f'DROP TABLE temp."keep_{child}"')


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(False)
