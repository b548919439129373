"""How every process opens one of our SQLite files (the embedded default under var/): WAL and
its pragmas, and files only their owner can read.

Our own tables (core/db.py, migrations) and Rasa's tracker store (bot/stores.py) both live in
SQLite files that several processes write at once. SQLAlchemy's `event` API is the same in 1.4
(Rasa's interpreter) and 2.0 (ours), so both runtimes install these pragmas from here.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import event


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    # Several processes write the same file: WAL lets readers go on while one writes, and
    # busy_timeout waits for a writer instead of failing at once.
    cursor = dbapi_connection.cursor()  # a DB-API 2 connection (sqlite3's, or via aiosqlite)
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    # Safe with WAL (no corruption on crash; a power cut may lose the last commits, never
    # the file); skips the fsyncs of every commit, which stall the writer's event loop.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _owner_only(path: str) -> None:
    """The database file and its WAL files readable by their owner alone: they hold visitors'
    messages and emails, and the files SQLite creates take the umask's 0644."""
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            os.chmod(name, 0o600)
        except OSError:  # not there yet (WAL files come with the first write), or not ours
            pass


def install_sqlite_pragmas(engine: Any) -> None:
    """Every new connection of this (synchronous) engine gets the pragmas, and leaves the
    file to its owner alone; other dialects are left alone."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        path = engine.url.database
        if path and path != ":memory:" and not path.startswith("file:"):
            event.listen(engine, "connect", lambda *_: _owner_only(path))
