"""Rasa tracker and lock stores chosen from the environment (runs inside Rasa's Python 3.10).

endpoints.yml names these classes so one file serves both shapes:
- embedded default: SQL tracker store on a SQLite file under var/, in-memory lock store;
- production: SQL tracker store on DATABASE_URL (PostgreSQL), RedisLockStore on REDIS_URL.

The environment is read by core/settings.py (`ProcessSettings`, standard library only), the
one reader our other processes use, so Rasa and the gateway agree on where the tracker is.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlparse

from rasa.core.brokers.broker import EventBroker
from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain

from core.settings import ProcessSettings
from core.sqlite import install_sqlite_pragmas

logger = logging.getLogger(__name__)


def tracker_store_params(settings: ProcessSettings) -> dict[str, Any]:
    """SQLTrackerStore keyword arguments for DATABASE_URL, or the embedded SQLite file
    (`settings.tracker_store_url`, where the gateway looks for it too)."""
    if settings.uses_embedded_storage:
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        return {"dialect": "sqlite", "db": str(settings.var_dir / "rasa-tracker.db")}
    parsed = urlparse(settings.database_url)  # async form: postgresql+psycopg://...
    dialect = parsed.scheme.split("+", 1)[0]
    return {
        "dialect": dialect,
        "host": parsed.hostname,
        "port": parsed.port,
        "db": parsed.path.lstrip("/"),
        "username": unquote(parsed.username) if parsed.username else None,
        "password": unquote(parsed.password) if parsed.password else None,
        "query": dict(part.split("=", 1) for part in parsed.query.split("&") if "=" in part),
    }


class EnvTrackerStore(SQLTrackerStore):
    def __init__(
        self,
        domain: Domain | None = None,
        event_broker: EventBroker | None = None,
        host: str | None = None,
        **kwargs: Any,
    ) -> None:
        params = tracker_store_params(ProcessSettings.from_env())
        logger.info(
            "tracker store: SQL (%s%s)",
            params["dialect"],
            f" at {params.get('host')}:{params.get('port')}/{params.get('db')}"
            if params["dialect"] != "sqlite"
            else f" file {params['db']}",
        )
        super().__init__(domain=domain, event_broker=event_broker, **params, **kwargs)
        # The embedded file gets the pragmas our own SQLite files have (core/sqlite.py): in
        # SQLite's default rollback journal every tracker save waited for fsyncs with the event
        # loop blocked, ~10 % of Rasa's busy time under 20 concurrent conversations (py-spy).
        # SQLAlchemy 1.4 opens a new connection per session for a file (NullPool), so each
        # one gets them; disposing drops the connection Rasa opened to create its table.
        install_sqlite_pragmas(self.engine)
        self.engine.dispose()

    # Rasa wraps every tracker store in FailSafeTrackerStore, which on an error quietly
    # carries on with an in-memory tracker (the conversation's history is then lost). Say so
    # loudly; the gateway's /health also checks the tracker database directly.
    async def save(self, tracker: Any) -> None:
        try:
            await super().save(tracker)
        except Exception:
            logger.error("TRACKER STORE FAILED to save %s: Rasa falls back to memory, this "
                         "conversation's state is not persisted", tracker.sender_id, exc_info=True)
            raise

    async def retrieve(self, sender_id: str) -> Any:
        try:
            return await super().retrieve(sender_id)
        except Exception:
            logger.error("TRACKER STORE FAILED to load %s: Rasa falls back to memory", sender_id,
                         exc_info=True)
            raise


class EnvLockStore(LockStore):
    """RedisLockStore when REDIS_URL is set (needed for more than one Rasa process), else
    the in-memory lock store.

    Rasa insists that a custom lock store `type` names a class, so this class's constructor
    returns an instance of one of Rasa's own stores (Python then skips __init__).
    """

    # Rasa passes endpoint_config=...; unused, our settings come from the environment.
    def __new__(cls, **_: object) -> LockStore:
        return env_lock_store()


def env_lock_store() -> LockStore:
    # Several Sanic workers need the shared Redis lock: ProcessSettings refuses SANIC_WORKERS > 1
    # without REDIS_URL (each worker would hold its own in-memory locks).
    settings = ProcessSettings.from_env()
    if not settings.redis_url:
        logger.info("lock store: in-memory (single Rasa process)")
        return InMemoryLockStore()
    parsed = urlparse(settings.redis_url)
    db = int(parsed.path.lstrip("/") or 0)
    logger.info("lock store: Redis at %s:%s/%s", parsed.hostname, parsed.port or 6379, db)
    return RedisLockStore(
        host=parsed.hostname or "localhost",
        port=parsed.port or 6379,
        db=db,
        username=unquote(parsed.username) if parsed.username else None,
        password=unquote(parsed.password) if parsed.password else None,
        use_ssl=parsed.scheme == "rediss",
        key_prefix="switchboard",
    )
