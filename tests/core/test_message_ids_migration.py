"""Migration 0015: on an embedded SQLite file that already holds messages, deliveries and shops'
webhooks, upgrading keeps every row and id (the webhook deliveries' tries too, whose tables
reference the recreated ones ON DELETE CASCADE), and from then on an id whose row was deleted
(a visitor's erasure, the retention sweep, the webhook log's pruning) is never given to
another row; downgrading keeps the rows too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config

from core.settings import ROOT

TABLES = ("messages", "deliveries", "webhooks", "webhook_deliveries")
NOW = "2026-12-02 12:00:00.000000"
# One new row per table, for after its newest was deleted.
NEW_ROW = {
    "messages": "(tenant_id, sender_id, channel, direction, text, created_at) VALUES "
                "('demo', 'demo:rest:v-9', 'rest', 'out', 'new', ?)",
    "deliveries": "(tenant_id, channel, provider, status, attempts, created_at, updated_at) "
                  "VALUES ('demo', 'sms', 'twilio', 'sent', 1, ?, ?)",
    "webhooks": "(tenant_id, url, events, secret_sealed, last_event_id, created_by, "
                "created_at) VALUES ('demo', 'https://shop.example/new', '[]', x'00', 0, "
                "'owner', ?)",
    "webhook_deliveries": "(webhook_id, tenant_id, event_id, kind, status, attempts, "
                          "created_at, next_attempt_at) VALUES (1, 'demo', 9, "
                          "'handoff.requested', 'pending', 0, ?, ?)",
}


def _alembic(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["url"] = url
    return config


def _seed(db: sqlite3.Connection) -> None:
    for pk in (1, 2, 3):
        db.execute("INSERT INTO messages (id, tenant_id, sender_id, channel, direction, text, "
                   "created_at) VALUES (?, 'demo', ?, 'rest', 'out', ?, ?)",
                   (pk, f"demo:rest:v-{pk}", f"message {pk}", NOW))
        db.execute("INSERT INTO deliveries (id, tenant_id, channel, provider, "
                   "provider_message_id, message_pk, status, attempts, created_at, updated_at) "
                   "VALUES (?, 'demo', 'sms', 'twilio', ?, ?, 'sent', 1, ?, ?)",
                   (pk, f"SM{pk}", pk, NOW, NOW))
        db.execute("INSERT INTO webhooks (id, tenant_id, url, events, secret_sealed, "
                   "last_event_id, created_by, created_at) VALUES (?, 'demo', ?, '[]', x'00', "
                   "0, 'owner', ?)", (pk, f"https://shop.example/{pk}", NOW))
        db.execute("INSERT INTO webhook_deliveries (id, webhook_id, tenant_id, event_id, kind, "
                   "status, attempts, created_at, next_attempt_at) VALUES (?, ?, 'demo', ?, "
                   "'handoff.requested', 'delivered', 1, ?, ?)", (pk, pk, pk, NOW, NOW))
        db.execute("INSERT INTO webhook_attempts (id, delivery_id, number, http_status, "
                   "duration_ms, at) VALUES (?, ?, 1, 200, 12, ?)", (pk, pk, NOW))


def _ids(db: sqlite3.Connection, table: str) -> list[int]:
    return [pk for (pk,) in db.execute(f"SELECT id FROM {table} ORDER BY id")]


def _schema(db: sqlite3.Connection, table: str) -> str:
    return str(db.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                          (table,)).fetchone()[0])


def _next_id_after_deleting_the_newest(db: sqlite3.Connection, table: str) -> int:
    db.execute(f"DELETE FROM {table} WHERE id = (SELECT max(id) FROM {table})")
    values = NEW_ROW[table]
    row = db.execute(f"INSERT INTO {table} {values} RETURNING id",
                     (NOW,) * values.count("?")).fetchone()
    return int(row[0])


def test_upgrade_keeps_rows_and_ids_and_deleted_ids_stay_unused(tmp_path: Path) -> None:
    path = tmp_path / "switchboard.db"
    config = _alembic(f"sqlite:///{path}")
    command.upgrade(config, "0014")
    with sqlite3.connect(path) as db:
        _seed(db)
    db.close()

    command.upgrade(config, "head")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA foreign_keys=ON")  # as our connections are (core/sqlite.py)
        for table in TABLES:
            assert "AUTOINCREMENT" in _schema(db, table), table
            assert _ids(db, table) == [1, 2, 3], table
        # The tries of webhook deliveries were not taken along when their tables were copied.
        assert _ids(db, "webhook_attempts") == [1, 2, 3]
        assert db.execute("SELECT text FROM messages ORDER BY id").fetchall() == [
            ("message 1",), ("message 2",), ("message 3",)]
        assert db.execute("SELECT message_pk FROM deliveries ORDER BY id").fetchall() == [
            (1,), (2,), (3,)]
        for table in ("messages", "deliveries", "webhook_deliveries", "webhooks"):
            # The newest row goes (an erasure, a prune); the next one does not take its id.
            assert _next_id_after_deleting_the_newest(db, table) == 4, table
        # Deleting webhook delivery 3 took its try, as before.
        assert _ids(db, "webhook_attempts") == [1, 2]
        indexes = {name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN (?, ?, ?, ?)",
            TABLES)}
        assert {"ix_messages_tenant_id_created_at", "ix_messages_sender_id",
                "ix_deliveries_sender_id", "ix_webhooks_tenant_id",
                "ix_webhook_deliveries_status_next_attempt_at"} <= indexes
        assert "REFERENCES webhook_deliveries" in _schema(db, "webhook_attempts")
    db.close()

    command.downgrade(config, "0014")
    with sqlite3.connect(path) as db:
        for table in TABLES:
            assert "AUTOINCREMENT" not in _schema(db, table), table
        assert _ids(db, "messages") == [1, 2, 4]
        assert _ids(db, "deliveries") == [1, 2, 4]
        assert _ids(db, "webhooks") == [1, 2, 4]
        assert _ids(db, "webhook_deliveries") == [1, 2, 4]
        assert _ids(db, "webhook_attempts") == [1, 2]
    db.close()
