"""Alembic builds the same schema as the models, and downgrades cleanly, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import actions.commerce.tables  # noqa: F401
import core.conversations  # noqa: F401
import tenants.models  # noqa: F401
from core.db import Base, include_name, sync_url
from core.settings import ROOT, async_database_url
from tests.databases import database_params, migrated_url


@pytest.mark.parametrize("kind", database_params())
def test_upgrade_matches_models_and_downgrade_empties(kind: str, tmp_path: Path) -> None:
    url = sync_url(async_database_url(migrated_url(kind, tmp_path)))
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_name": include_name})
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        config = Config(str(ROOT / "alembic.ini"))
        config.attributes["url"] = url
        command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version", "events"}
        command.upgrade(config, "head")
        tables = set(inspect(engine).get_table_names())
        assert {"tenants", "demo_orders", "return_requests", "messages"} <= tables
    finally:
        engine.dispose()
