"""A migrated database per test: SQLite, and PostgreSQL when it answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.db import create_engine, session_factory
from core.settings import async_database_url
from tests.databases import database_params, migrated_url


@pytest.fixture(params=database_params())
def database_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def sessions(database_kind: str, tmp_path: Path) -> AsyncIterator[async_sessionmaker]:
    engine = create_engine(async_database_url(migrated_url(database_kind, tmp_path)))
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()
