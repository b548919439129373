"""core/db.py's SQLite engine rolls back only what SQLite holds open: a session that wrote and
did not commit is undone and releases the file's write lock (another process can write at
once), while sessions that only read or that committed cost no rollback round trip to
aiosqlite's thread."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text

from core.db import create_engine, session_factory


@pytest.fixture
def rollbacks(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """ROLLBACKs that reached aiosqlite's thread."""
    seen: Counter[str] = Counter()
    rollback = aiosqlite.Connection.rollback

    async def counted(self: aiosqlite.Connection) -> None:
        seen["rollback"] += 1
        await rollback(self)

    monkeypatch.setattr(aiosqlite.Connection, "rollback", counted)
    return seen


def test_sqlite_sessions_roll_back_only_open_transactions(tmp_path: Path,
                                                          rollbacks: Counter[str]) -> None:
    path = tmp_path / "x.db"

    async def main() -> dict[str, object]:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        sessions = session_factory(engine)
        out: dict[str, object] = {}
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE notes (body TEXT)"))
        rollbacks.clear()
        async with sessions() as session:  # reads only
            await session.execute(text("SELECT count(*) FROM notes"))
        async with sessions() as session:  # writes and commits
            await session.execute(text("INSERT INTO notes VALUES ('kept')"))
            await session.commit()
        out["after_read_and_commit"] = rollbacks["rollback"]
        async with sessions() as session:  # writes and leaves without committing
            await session.execute(text("INSERT INTO notes VALUES ('dropped')"))
        out["after_abandoned_write"] = rollbacks["rollback"]
        # The write lock is free: another connection (another process) writes at once.
        other = sqlite3.connect(path, timeout=0)
        other.execute("INSERT INTO notes VALUES ('other')")
        other.commit()
        other.close()
        async with sessions() as session:
            rows = await session.execute(text("SELECT body FROM notes ORDER BY rowid"))
            out["notes"] = [row[0] for row in rows]
        await engine.dispose()
        return out

    out = asyncio.run(main())
    assert out["after_read_and_commit"] == 0
    assert out["after_abandoned_write"] == 1
    assert out["notes"] == ["kept", "other"]
