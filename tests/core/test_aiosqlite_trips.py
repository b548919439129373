"""core/aiosqlite_trips.py: our SQLite engines give the same results and errors as SQLAlchemy's
aiosqlite adapter in fewer trips to aiosqlite's thread. A statement is one trip; a session that
wrote and did not commit is still rolled back (the file's write lock is free for another
process at once), while sessions that only read or that committed cost no rollback trip."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_cursor
from sqlalchemy.exc import IntegrityError, OperationalError

from core import aiosqlite_trips
from core.db import create_engine, session_factory


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Calls that went to aiosqlite's thread, by kind (rollback counted apart)."""
    seen: Counter[str] = Counter()
    execute, rollback = aiosqlite.Connection._execute, aiosqlite.Connection.rollback

    async def counted_execute(self: aiosqlite.Connection, fn: Any, *args: Any, **kw: Any) -> Any:
        seen["trip"] += 1
        return await execute(self, fn, *args, **kw)

    async def counted_rollback(self: aiosqlite.Connection) -> None:
        seen["rollback"] += 1
        await rollback(self)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted_execute)
    monkeypatch.setattr(aiosqlite.Connection, "rollback", counted_rollback)
    return seen


@contextlib.contextmanager
def adapter_statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """SQLAlchemy's own statement execution, for comparison (ours again after)."""
    with monkeypatch.context() as patch:
        patch.setattr(aiosqlite_trips, "single_trip_statements", lambda: None)
        patch.setattr(AsyncAdapt_aiosqlite_cursor, "execute", aiosqlite_trips._adapter_execute)
        yield


async def statements(path: Path) -> dict[str, Any]:
    """What a range of statements return and raise, and the trips each took."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    out: dict[str, Any] = {}
    async with engine.begin() as c:
        await c.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v INT)"))
    async with engine.begin() as c:
        insert = await c.execute(text("INSERT INTO t (k, v) VALUES ('a', 1)"))
        out["insert"] = [insert.rowcount, insert.lastrowid]
        returned = await c.execute(text("INSERT INTO t (k, v) VALUES ('b', 2) RETURNING id, k"))
        out["returning"] = [list(r) for r in returned]
        many = await c.execute(text("INSERT INTO t (k, v) VALUES (:k, :v)"),
                               [{"k": "c", "v": 3}, {"k": "d", "v": 4}])
        out["executemany"] = many.rowcount
        out["update"] = (await c.execute(text("UPDATE t SET v = v + 1 WHERE v > :n"),
                                         {"n": 1})).rowcount
    async with engine.connect() as c:
        out["select"] = [list(r) for r in await c.execute(text("SELECT * FROM t ORDER BY id"))]
        out["empty"] = [list(r) for r in await c.execute(text("SELECT * FROM t WHERE v > 99"))]
        out["scalar"] = (await c.execute(text("SELECT count(*) FROM t"))).scalar()
        streamed = await c.stream(text("SELECT k FROM t ORDER BY id"))
        out["streamed"] = [row[0] async for row in streamed]
        for name, sql in (("duplicate", "INSERT INTO t (k, v) VALUES ('a', 9)"),
                          ("syntax", "SELEC nothing")):
            try:
                await c.execute(text(sql))
            except (IntegrityError, OperationalError) as exc:
                out[name] = [type(exc).__name__, str(exc.orig)]
            await c.rollback()
    await engine.dispose()
    return out


def test_statements_give_what_the_adapter_gives(tmp_path: Path, trips: Counter[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    ours = asyncio.run(statements(tmp_path / "ours.db"))
    our_trips = trips["trip"]
    trips.clear()
    with adapter_statements(monkeypatch):
        theirs = asyncio.run(statements(tmp_path / "theirs.db"))
    assert ours == theirs
    assert ours["returning"] == [[2, "b"]] and ours["update"] == 3
    assert ours["streamed"] == ["a", "b", "c", "d"]
    assert ours["duplicate"][0] == "IntegrityError"
    assert our_trips < trips["trip"] / 2, (our_trips, trips["trip"])


def test_one_trip_a_statement(tmp_path: Path, trips: Counter[str]) -> None:
    async def main() -> int:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
        async with engine.connect() as c:
            await c.execute(text("SELECT 1"))  # connects, sets the pragmas
            trips.clear()
            for _ in range(10):
                await c.execute(text("SELECT 1"))
            made = trips["trip"]
        await engine.dispose()
        return made

    assert asyncio.run(main()) == 10


def test_only_open_transactions_are_rolled_back(tmp_path: Path, trips: Counter[str]) -> None:
    path = tmp_path / "x.db"

    async def main() -> dict[str, object]:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        sessions = session_factory(engine)
        out: dict[str, object] = {}
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE notes (body TEXT)"))
        trips.clear()
        async with sessions() as session:  # reads only
            await session.execute(text("SELECT count(*) FROM notes"))
        async with sessions() as session:  # writes and commits
            await session.execute(text("INSERT INTO notes VALUES ('kept')"))
            await session.commit()
        out["after_read_and_commit"] = trips["rollback"]
        async with sessions() as session:  # writes and leaves without committing
            await session.execute(text("INSERT INTO notes VALUES ('dropped')"))
        out["after_abandoned_write"] = trips["rollback"]
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
