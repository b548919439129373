"""Rasa tracker and lock stores chosen from the environment (runs inside Rasa's Python 3.10).

endpoints.yml names these classes so one file serves both shapes:
- embedded default: SQL tracker store on a SQLite file under var/, in-memory lock store;
- production: SQL tracker store on DATABASE_URL (PostgreSQL), RedisLockStore on REDIS_URL.

The environment is read by core/settings.py (`ProcessSettings`, standard library only), the
one reader our other processes use, so Rasa and the gateway agree on where the tracker is.

Why a cache. Rasa's SQLTrackerStore reads a conversation's whole latest session on every
turn (an ORM query with a subquery for the session's start) and, to save, counts the stored
events with that query again; both run on Rasa's event loop. Under 20 concurrent
conversations they were a third of Rasa's CPU (py-spy: save 17.5 %, of it 72 % the count;
retrieve 14.7 %). EnvTrackerStore keeps each conversation's latest-session rows (id, type,
JSON) in memory, LRU over CACHED_SENDERS conversations, and checks them against the table
with one indexed query per use: the sender's row count and newest id. Rows another process
added since (other Rasa workers or replicas) are read and appended; rows that went away
(erasure, retention) or anything unexpected make it read the session afresh, as Rasa would.
Rows of one conversation are written under Rasa's lock for it (the Redis lock store when
processes share the table), so a newer row always has a higher id. The tracker is still
rebuilt from the JSON on every turn, exactly as Rasa does.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore
from rasa.core.tracker_store import SQLTrackerStore, ensure_schema_exists
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker

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


CACHED_SENDERS = 5_000  # conversations whose latest session's rows are kept (a few KB each)
_COUNT = sa.text("SELECT count(*), max(id) FROM events WHERE sender_id = :sender")
_NEWER = sa.text("SELECT id, type_name, data FROM events WHERE sender_id = :sender "
                 "AND id > :after ORDER BY id")


@dataclass
class _Session:
    rows: list[tuple[int, str, str]]  # (id, type_name, data) since the latest session start
    last_id: int | None  # the sender's newest row, any session
    total: int  # the sender's rows, all sessions


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
        # SQLAlchemy 1.4 opens a new connection per session for a file (NullPool): opening it
        # and setting the pragmas was 3/4 of each tracker query's time under load (py-spy),
        # so the file gets a small pool of kept connections instead. Rasa's store runs on
        # its event loop's thread; check_same_thread is off only because a pool may hand a
        # connection to another thread (the runtime loads models in one, never touching this).
        if params["dialect"] == "sqlite":
            opened: Any = vars(self)["engine"]
            opened.dispose()
            self.engine = sa.create_engine(opened.url, poolclass=sa.pool.QueuePool, pool_size=2,
                                           max_overflow=2,
                                           connect_args={"check_same_thread": False})
            self.sessionmaker = sa.orm.sessionmaker(bind=self.engine)
        install_sqlite_pragmas(self.engine)

        # Shared by the copies the runtime makes for shops' models (bot/runtime.py).
        self._recent: OrderedDict[str, _Session] = OrderedDict()

    # --- the latest session's rows, kept per sender (module doc: "Why a cache") ---

    async def _retrieve(self, sender_id: str, fetch_events_from_all_sessions: bool) -> Any:
        if fetch_events_from_all_sessions:
            return await super()._retrieve(sender_id, True)
        with self.engine.begin() as connection:
            cached = self._fresh(connection, sender_id)
            if cached is None:
                with self._orm(connection) as session:
                    rows = self._event_query(session, sender_id,
                                             fetch_events_from_all_sessions=False).all()
                cached = self._remember(connection, sender_id,
                                        [(row.id, row.type_name, row.data) for row in rows])
        if not cached.rows or not self.domain:
            return None
        return DialogueStateTracker.from_dict(
            sender_id, [json.loads(data) for _, _, data in cached.rows], self.domain.slots)

    async def _save(self, tracker: Any) -> None:
        """SQLTrackerStore.save, counting the stored events from the cache when it is fresh
        (Rasa counts them with a query per save) and keeping the new rows in it."""
        await self.stream_events(tracker)
        with self.engine.begin() as connection:
            cached = self._fresh(connection, tracker.sender_id)
            if cached is not None:
                stored = len(cached.rows)
            else:
                with self._orm(connection) as session:
                    stored = self._event_query(session, tracker.sender_id,
                                               fetch_events_from_all_sessions=False).count()
            rows = []
            insert = self.SQLEvent.__table__.insert()
            for event in itertools.islice(tracker.events, stored, len(tracker.events)):
                data = event.as_dict()
                text = json.dumps(data)
                # One row at a time: its id, for the cache. A Core insert, not an ORM object:
                # a save took 3.7 ms of Rasa's CPU with the ORM's unit of work, 1.9 ms so
                # (py-spy, 20 concurrent conversations, bench/stock_flow.py).
                inserted = connection.execute(insert, {
                    "sender_id": tracker.sender_id, "type_name": event.type_name,
                    "timestamp": data.get("timestamp"),
                    "intent_name": data.get("parse_data", {}).get("intent", {}).get("name"),
                    "action_name": data.get("name"), "data": text})
                key = inserted.inserted_primary_key
                assert key is not None  # a single row's insert
                rows.append((key[0], event.type_name, text))
        if cached is not None:
            self._extend(tracker.sender_id, cached, rows)

    @contextlib.contextmanager
    def _orm(self, connection: Any) -> Iterator[Any]:
        """Rasa's ORM session (its queries need one) inside the connection's transaction, with
        Rasa's check that a configured PostgreSQL schema exists."""
        with sa.orm.Session(bind=connection) as session:
            ensure_schema_exists(session)
            yield session

    def _fresh(self, connection: Any, sender_id: str) -> _Session | None:
        """The cached session, brought up to date with rows written since by any process;
        None when there is none or rows went away (erasure, retention: read afresh)."""
        cached = self._recent.get(sender_id)
        if cached is None:
            return None
        total, last = connection.execute(_COUNT, {"sender": sender_id}).one()
        if last == cached.last_id and total == cached.total:
            self._recent.move_to_end(sender_id)
            return cached
        if last is None or (cached.last_id is not None and last < cached.last_id):
            self._recent.pop(sender_id, None)
            return None
        newer = connection.execute(_NEWER, {"sender": sender_id,
                                         "after": cached.last_id or 0}).all()
        if total != cached.total + len(newer):  # rows also went away: start over
            self._recent.pop(sender_id, None)
            return None
        return self._extend(sender_id, cached, [tuple(row) for row in newer])

    def _remember(self, connection: Any, sender_id: str,
                  rows: list[tuple[int, str, str]]) -> _Session:
        total, last = connection.execute(_COUNT, {"sender": sender_id}).one()
        cached = _Session(rows=rows, last_id=last, total=total)
        # Kept when nothing was written between the two reads (a new conversation too).
        if (rows and last == rows[-1][0]) or (not rows and total == 0):
            self._recent[sender_id] = cached
            while len(self._recent) > CACHED_SENDERS:
                self._recent.popitem(last=False)
        return cached

    def _extend(self, sender_id: str, cached: _Session,
                rows: list[tuple[int, str, str]]) -> _Session:
        for row in rows:
            if row[1] == SessionStarted.type_name:  # a new session: the old one is history
                cached.rows = []
            cached.rows.append(row)
        if rows:
            cached.last_id = rows[-1][0]
            cached.total += len(rows)
        self._recent[sender_id] = cached
        self._recent.move_to_end(sender_id)
        while len(self._recent) > CACHED_SENDERS:
            self._recent.popitem(last=False)
        return cached

    # Rasa wraps every tracker store in FailSafeTrackerStore, which on an error quietly
    # carries on with an in-memory tracker (the conversation's history is then lost). Say so
    # loudly; the gateway's /health also checks the tracker database directly.
    async def save(self, tracker: Any) -> None:
        try:
            await self._save(tracker)
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
