"""Test-wide settings and storage. Integration tests start the real processes
(tests/integration/stack.py).

PostgreSQL and Redis are shared with a developer's `make run`, so a test session leaves nothing
behind on them:
- TEST_DATABASE_URL names a server (and a database to connect to): the session creates a
  database of its own there (switchboard_test_<random>), points TEST_DATABASE_URL at it for
  every test and every integration stack, and drops it at the end, failed or not.
- TEST_REDIS_URL names a Redis database that belongs to the tests (`make test` uses /15): the
  session empties it at the start and at the end (dedupe ids live a week, cached answers a day).

`make test` runs the suite in four pytest-xdist workers (`-n 4`). Each worker is a session of
its own: its own throwaway database, and its own Redis database counted down from
TEST_REDIS_URL's (gw0 /15, gw1 /14, gw2 /13, gw3 /12). Tests that share costly fixtures stay on
one worker (`xdist_group`). An integration stack on PostgreSQL + Redis gets a database and a
Redis database of its own (as many below the session's as there are workers: /11 to /8 with
four), so that its running processes (job workers among them) never see the rows and keys of
the tests that run beside it.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def _xdist_controller(config: pytest.Config) -> bool:
    """True in the process that hands tests to xdist workers (it runs none itself)."""
    return config.pluginmanager.has_plugin("dsession")


def redis_url_below(url: str, by: int) -> str:
    """The Redis database `by` below the one `url` names (same server)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0) - by
    if number < 0:
        raise pytest.UsageError(f"no Redis database left {by} below {url}")
    return urlunsplit(parts._replace(path=f"/{number}"))


_STACK_TEST = re.compile(r"^tests/integration/.*\[(embedded|postgres\+redis)[-\]]")


def xdist_group(nodeid: str) -> str:
    """The tests that go to one worker together: those on one integration stack shape (a stack
    starts once per worker that needs it), else a module (its module fixtures are set up once)."""
    stack = _STACK_TEST.match(nodeid)
    return f"stack-{stack.group(1)}" if stack else nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's LoadScopeScheduling over our groups, in collection order (the stacks first). Not
    `--dist loadgroup`: its group marks do not reach node ids under pytest 9."""
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]  # no py.typed

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    config.option.loadscopereorder = False
    return GroupScheduling(config, log)


@pytest.hookimpl(trylast=True)  # after pytest's own ordering by fixture parameters
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In xdist workers the longest groups come first, one to each worker at the start: the
    PostgreSQL + Redis stack's tests (shop models' training among them), then the embedded one's."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    first = {"stack-postgres+redis": 0, "stack-embedded": 1}
    items.sort(key=lambda item: first.get(xdist_group(item.nodeid), 2))


def pytest_sessionstart(session: pytest.Session) -> None:
    if _xdist_controller(session.config):
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and os.environ.get("TEST_REDIS_URL"):
        _session_storage["redis_base"] = os.environ["TEST_REDIS_URL"]
        os.environ["TEST_REDIS_URL"] = redis_url_below(os.environ["TEST_REDIS_URL"],
                                                        int(worker.removeprefix("gw")))
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
    if _xdist_controller(session.config):
        return
    redis_url = os.environ.get("TEST_REDIS_URL")
    if redis_url:
        try:
            empty_test_redis(redis_url)
        except Exception as exc:  # noqa: BLE001 - report, do not mask the tests' own outcome
            sys.stderr.write(f"\ncould not empty the tests' Redis database {redis_url}: {exc}\n")
    if "redis_base" in _session_storage:
        os.environ["TEST_REDIS_URL"] = _session_storage.pop("redis_base")


@pytest.fixture(scope="session", autouse=True)
def each_text_embedded_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A document vector is a function of its text alone, and dozens of tests ingest the demo
    shop's documents into fresh databases: in this test session the embedder encodes each
    distinct text once and hands the same vectors out again, in every xdist worker (kept as
    files in the session's temporary directory, which its workers share; a text two workers
    embed at once is embedded by both, the same). Its encoders are checked against
    sentence-transformers by tests/knowledge/test_query_encoder.py, which asks them for texts
    nothing else embeds; processes a test starts embed for themselves."""
    import hashlib

    import numpy as np

    from knowledge.embeddings import Embedder

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # popen-gw0, popen-gw1, ... sit in the session's directory
    store = shared / "embedded"
    store.mkdir(exist_ok=True)
    encode = Embedder.encode
    known: dict[tuple[str, str], np.ndarray] = {}

    def file(key: tuple[str, str]) -> Path:
        return store / (hashlib.sha256("\0".join(key).encode()).hexdigest() + ".npy")

    def kept(key: tuple[str, str]) -> np.ndarray | None:
        if key not in known:
            path = file(key)
            if path.exists():
                known[key] = np.load(path)
        return known.get(key)

    def keep(key: tuple[str, str], vector: np.ndarray) -> None:
        known[key] = vector
        path = file(key)
        part = path.with_suffix(f".{os.getpid()}.part")
        with part.open("wb") as out:
            np.save(out, vector)
        os.replace(part, path)  # whole or not there, for the other workers

    def encode_each_text_once(self: Embedder, texts: Sequence[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if kept((self.precision, t)) is None]
        if new:
            for text, vector in zip(new, encode(self, new), strict=True):
                keep((self.precision, text), vector)
        if not texts:
            return encode(self, texts)  # its empty array, shaped as the encoder makes it
        return np.stack([known[(self.precision, t)] for t in texts])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Embedder, "encode", encode_each_text_once)
        yield
