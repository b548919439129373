"""Migration 0012: on an embedded SQLite file that already holds handoffs, upgrading keeps every
row and id, and from then on an id whose row was deleted (a visitor's erasure, retention) is
never given to another handoff, event or note; downgrading keeps the rows too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config

from core.settings import ROOT

TABLES = ("handoff_requests", "conversation_events", "conversation_notes")
NOW = "2026-12-01 12:00:00.000000"


def _alembic(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["url"] = url
    return config


def _seed(db: sqlite3.Connection) -> None:
    for pk in (1, 2, 3):
        sender = f"demo:web:w-{pk}"
        db.execute("INSERT INTO handoff_requests (id, tenant_id, sender_id, channel, reason, "
                   "status, created_at) VALUES (?, 'demo', ?, 'web', 'visitor_asked', "
                   "'queued', ?)", (pk, sender, NOW))
        db.execute("INSERT INTO conversation_events (id, tenant_id, sender_id, handoff_id, "
                   "kind, data, created_at) VALUES (?, 'demo', ?, ?, 'handoff.requested', "
                   "'{}', ?)", (pk, sender, pk, NOW))
        db.execute("INSERT INTO conversation_notes (id, tenant_id, sender_id, handoff_id, "
                   "author_id, author_name, text, created_at) VALUES (?, 'demo', ?, ?, 'u1', "
                   "'Ann', ?, ?)", (pk, sender, pk, f"note {pk}", NOW))


def _next_id_after_deleting_the_newest(db: sqlite3.Connection, table: str) -> int:
    db.execute(f"DELETE FROM {table} WHERE id = (SELECT max(id) FROM {table})")
    columns = {"handoff_requests": "(tenant_id, sender_id, channel, reason, status, "
                                   "created_at) VALUES ('demo', 'demo:web:w-9', 'web', "
                                   "'visitor_asked', 'queued', ?)",
               "conversation_events": "(tenant_id, sender_id, kind, data, created_at) "
                                      "VALUES ('demo', 'demo:web:w-9', 'handoff.requested', "
                                      "'{}', ?)",
               "conversation_notes": "(tenant_id, sender_id, author_id, author_name, text, "
                                     "created_at) VALUES ('demo', 'demo:web:w-9', 'u1', "
                                     "'Ann', 'new', ?)"}[table]
    return int(db.execute(f"INSERT INTO {table} {columns} RETURNING id", (NOW,)).fetchone()[0])


def test_upgrade_keeps_rows_and_ids_and_deleted_ids_stay_unused(tmp_path: Path) -> None:
    path = tmp_path / "switchboard.db"
    config = _alembic(f"sqlite:///{path}")
    command.upgrade(config, "0011")
    with sqlite3.connect(path) as db:
        _seed(db)
    db.close()

    command.upgrade(config, "head")
    with sqlite3.connect(path) as db:
        for table in TABLES:
            schema = db.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                                (table,)).fetchone()[0]
            assert "AUTOINCREMENT" in schema, table
            assert [pk for (pk,) in db.execute(f"SELECT id FROM {table} ORDER BY id")] == [
                1, 2, 3], table
            # The newest row goes (an erasure); the next one does not take its id.
            assert _next_id_after_deleting_the_newest(db, table) == 4, table
        notes = db.execute("SELECT text FROM conversation_notes ORDER BY id").fetchall()
        assert notes == [("note 1",), ("note 2",), ("new",)]
        indexes = {name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN (?, ?, ?)",
            TABLES)}
        assert {"ix_handoff_requests_tenant_id_status", "ix_conversation_events_tenant_id_id",
                "ix_conversation_notes_tenant_id_sender_id"} <= indexes
    db.close()

    command.downgrade(config, "0011")
    with sqlite3.connect(path) as db:
        for table in TABLES:
            schema = db.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                                (table,)).fetchone()[0]
            assert "AUTOINCREMENT" not in schema, table
            assert [pk for (pk,) in db.execute(f"SELECT id FROM {table} ORDER BY id")] == [
                1, 2, 4], table
    db.close()
