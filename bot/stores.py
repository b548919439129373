"""Rasa tracker and lock stores chosen from the environment (runs inside Rasa's Python 3.10).

endpoints.yml names these classes so one file serves both shapes:
- embedded default: SQL tracker store on a SQLite file under var/, in-memory lock store;
- production: SQL tracker store on DATABASE_URL (PostgreSQL), RedisLockStore on REDIS_URL.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote, urlparse

from rasa.core.brokers.broker import EventBroker
from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


def tracker_store_params(env: "os._Environ[str] | dict[str, str]") -> dict[str, Any]:
    """SQLTrackerStore keyword arguments for DATABASE_URL, or the embedded SQLite file."""
    url = env.get("DATABASE_URL", "").strip()
    if not url:
        var_dir = Path(env.get("SWITCHBOARD_VAR_DIR", str(ROOT / "var"))).resolve()
        var_dir.mkdir(parents=True, exist_ok=True)
        return {"dialect": "sqlite", "db": str(var_dir / "rasa-tracker.db")}
    parsed = urlparse(url)
    dialect = parsed.scheme.split("+", 1)[0]
    if dialect == "postgres":
        dialect = "postgresql"
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
        domain: Optional[Domain] = None,
        event_broker: Optional[EventBroker] = None,
        host: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        params = tracker_store_params(os.environ)
        logger.info(
            "tracker store: SQL (%s%s)",
            params["dialect"],
            f" at {params.get('host')}:{params.get('port')}/{params.get('db')}"
            if params["dialect"] != "sqlite"
            else f" file {params['db']}",
        )
        super().__init__(domain=domain, event_broker=event_broker, **params, **kwargs)

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

    def __new__(cls, endpoint_config: Optional[EndpointConfig] = None) -> LockStore:  # type: ignore[misc]
        return env_lock_store()


def env_lock_store() -> LockStore:
    url = os.environ.get("REDIS_URL", "").strip()
    if not url:
        # Rasa accepts several Sanic workers with any custom lock store; each worker would
        # then hold its own in-memory locks and interleave one conversation's messages.
        if int(os.environ.get("SANIC_WORKERS", "1") or 1) > 1:
            raise RuntimeError("SANIC_WORKERS > 1 needs REDIS_URL (a shared lock store)")
        logger.info("lock store: in-memory (single Rasa process)")
        return InMemoryLockStore()
    parsed = urlparse(url)
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
