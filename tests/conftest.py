"""Test-wide settings and storage. Integration tests start the real processes
(tests/integration/stack.py).

PostgreSQL and Redis are shared with a developer's `make run`, so a test session leaves nothing
behind on them:
- TEST_DATABASE_URL names a server (and a database to connect to): the session creates a
  database of its own there (switchboard_test_<random>), points TEST_DATABASE_URL at it for
  every test and every integration stack, and drops it at the end, failed or not.
- TEST_REDIS_URL names a Redis database that belongs to the tests (`make test` uses /15): the
  session empties it at the start and at the end (dedupe ids live a week, cached answers a day).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import psycopg

# Unit tests build Settings from the environment; give them throwaway secrets.
os.environ.setdefault("SWITCHBOARD_CREDENTIALS_KEY", "lD3k5cRsZ0sJ2zv0cH2b1K0mD0vYt8bqz9vO3J2bX1c=")
os.environ.setdefault("RASA_TOKEN", "test-token")

_THROWAWAY_PREFIX = "switchboard_test_"


def services() -> dict[str, str | None]:
    """PostgreSQL/Redis URLs that `make test` found answering (empty when not); during a
    session the database URL names the session's own throwaway database."""
    return {
        "database_url": os.environ.get("TEST_DATABASE_URL") or None,
        "redis_url": os.environ.get("TEST_REDIS_URL") or None,
    }


def _server_url(url: str, database: str | None = None) -> str:
    """`url` as a plain libpq URL, on `database` when given (psycopg does not take drivers)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _admin(url: str) -> psycopg.Connection:
    import psycopg

    return psycopg.connect(_server_url(url), autocommit=True, connect_timeout=5)


def create_throwaway_database(base_url: str) -> str:
    """A new, empty database on `base_url`'s server; returns its URL (same user, host, driver)."""
    from psycopg import errors, sql

    name = _THROWAWAY_PREFIX + secrets.token_hex(6)
    with _admin(base_url) as conn:
        for attempt in range(5):
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                break
            except errors.ObjectInUse:  # someone is connected to template1 right now
                if attempt == 4:
                    raise
                time.sleep(0.5)
    from sqlalchemy.engine import make_url

    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def drop_throwaway_database(base_url: str, url: str) -> None:
    """Drop the session's database, ending whatever still holds a connection to it."""
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = make_url(url).database or ""
    assert name.startswith(_THROWAWAY_PREFIX), f"refusing to drop {name!r}"
    with _admin(base_url) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        force = sql.SQL(" WITH (FORCE)") if conn.info.server_version >= 130000 else sql.SQL("")
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)) + force)


def empty_test_redis(url: str) -> None:
    """Empty the tests' own Redis database (never the one the app is configured with)."""
    import redis

    if url.rstrip("/") == (os.environ.get("REDIS_URL") or "").rstrip("/"):
        raise pytest.UsageError(f"TEST_REDIS_URL is REDIS_URL ({url}): the tests empty their "
                                "Redis database, give them one of their own (make test uses /15)")
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


_session_storage: dict[str, str] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    base = os.environ.get("TEST_DATABASE_URL")
    if base:
        url = create_throwaway_database(base)
        _session_storage.update(base=base, url=url)
        os.environ["TEST_DATABASE_URL"] = url
    redis_url = os.environ.get("TEST_REDIS_URL")
    if redis_url:
        empty_test_redis(redis_url)


@pytest.hookimpl(trylast=True)  # after the session's fixtures (integration stacks) are torn down
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if "url" in _session_storage:
        try:
            drop_throwaway_database(_session_storage["base"], _session_storage["url"])
        finally:
            os.environ["TEST_DATABASE_URL"] = _session_storage.pop("base")
            _session_storage.pop("url")
    redis_url = os.environ.get("TEST_REDIS_URL")
    if redis_url:
        try:
            empty_test_redis(redis_url)
        except Exception as exc:  # noqa: BLE001 - report, do not mask the tests' own outcome
            sys.stderr.write(f"\ncould not empty the tests' Redis database {redis_url}: {exc}\n")
