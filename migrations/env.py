"""Alembic environment: one metadata for all our tables, a synchronous connection to run on."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import actions.attempts  # noqa: F401  (registers tables on Base.metadata)
import actions.commerce.tables  # noqa: F401
import admin_api.tables  # noqa: F401
import admin_api.training.drafts  # noqa: F401
import admin_api.training.models  # noqa: F401
import admin_api.webhook_tables  # noqa: F401
import billing.tables  # noqa: F401
import core.conversations  # noqa: F401
import core.deliveries  # noqa: F401
import core.handoffs  # noqa: F401
import core.jobs  # noqa: F401
import knowledge.tables  # noqa: F401
import tenants.api_keys  # noqa: F401
import tenants.models  # noqa: F401
import tenants.texts  # noqa: F401
from core.db import Base, include_name, sync_url
from core.settings import ProcessSettings, async_database_url
from core.sqlite import install_sqlite_pragmas

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    """The URL a caller handed over (tests, the development bootstrap), else DATABASE_URL or the
    embedded SQLite file, read as every process reads them."""
    explicit = config.attributes.get("url")
    if explicit:
        return sync_url(async_database_url(explicit))
    settings = ProcessSettings.from_env()
    if settings.uses_embedded_storage:
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    return sync_url(settings.database_url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    install_sqlite_pragmas(engine)
    with engine.connect() as connection:
        # render_as_batch: SQLite cannot ALTER most things; batch mode recreates tables.
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True, include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
