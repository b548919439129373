"""Our SQLite files (the embedded default: transcripts, visitors' emails, Rasa's tracker) are
readable by their owner alone, the WAL files SQLite makes beside them too."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from core.db import create_engine

pytestmark = pytest.mark.asyncio


async def test_the_database_and_its_wal_files_are_the_owners_alone(tmp_path: Path) -> None:
    path = tmp_path / "switchboard.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE said (text TEXT)"))
            await connection.execute(text("INSERT INTO said VALUES ('my email is a@b.example')"))
        files = [path, Path(f"{path}-wal")]
        assert all(f.exists() for f in files)
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {
            f.name: 0o600 for f in files}
    finally:
        await engine.dispose()
