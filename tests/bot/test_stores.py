"""Rasa's tracker store on the embedded SQLite file opens it as our own files are opened.

Runs inside Rasa's interpreter (.venv-bot), where bot/stores.py is loaded by endpoints.yml.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import services

ROOT = Path(__file__).resolve().parents[2]
BOT_PY = ROOT / ".venv-bot" / "bin" / "python"

SCRIPT = r"""
import asyncio, json
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from bot.stores import EnvTrackerStore

async def main():
    store = EnvTrackerStore(domain=Domain.empty())
    tracker = DialogueStateTracker("shop:rest:visitor", [])
    tracker.update(UserUttered("where is my order?"))
    await store.save(tracker)
    again = await store.retrieve("shop:rest:visitor")
    with store.engine.connect() as connection:
        pragmas = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                   for name in ("journal_mode", "synchronous", "busy_timeout")}
    print(json.dumps({"text": again.latest_message.text, "pragmas": pragmas}))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def bot_python() -> Path:
    if not BOT_PY.exists():
        pytest.skip("Rasa's environment (.venv-bot) is not installed")
    return BOT_PY


def test_embedded_tracker_store_uses_wal_without_fsync_per_commit(bot_python: Path,
                                                                  tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["SWITCHBOARD_VAR_DIR"] = str(tmp_path)
    done = subprocess.run([str(bot_python), "-c", SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["text"] == "where is my order?"  # the tracker round-trips
    # WAL, synchronous=NORMAL (1) and a busy timeout on every connection the store opens.
    assert result["pragmas"] == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 5000}
    # WAL is a property of the file: any other reader (the gateway) sees it too.
    with sqlite3.connect(tmp_path / "rasa-tracker.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


CACHE_SCRIPT = r"""
import asyncio, json, time
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from bot.stores import EnvTrackerStore, tracker_store_params
from core.settings import ProcessSettings

DOMAIN = Domain.from_dict({"slots": {"order": {"type": "text", "mappings": [{"type": "custom"}]}}})
SENDER = "shop:rest:" + __import__("uuid").uuid4().hex

def texts(tracker):
    return [e.text for e in tracker.events if isinstance(e, UserUttered)] if tracker else None

async def turn(store, text, slot=None):
    tracker = await store.retrieve(SENDER)
    if tracker is None:
        tracker = DialogueStateTracker(SENDER, DOMAIN.slots)
        tracker.update(SessionStarted())
    tracker.update(UserUttered(text))
    if slot:
        tracker.update(SlotSet("order", slot))
    tracker.update(ActionExecuted("action_listen"))
    await store.save(tracker)

async def main():
    params = tracker_store_params(ProcessSettings.from_env())
    one, two = EnvTrackerStore(domain=DOMAIN), EnvTrackerStore(domain=DOMAIN)
    plain = SQLTrackerStore(domain=DOMAIN, **params)  # Rasa's own, as the reference
    out = {}
    await turn(one, "hello")
    await turn(one, "where is my order?", slot="1001")
    await turn(two, "it is 1002", slot="1002")  # another process writes in between
    mine, rasas = await one.retrieve(SENDER), await plain.retrieve(SENDER)
    out["after_other_process"] = texts(mine)
    out["same_as_rasa"] = [e.as_dict() for e in mine.events] == [e.as_dict() for e in rasas.events]
    out["slot"] = mine.get_slot("order")
    await turn(one, "thanks")  # counted from the cache: nothing written twice
    with one.engine.connect() as c:
        out["rows"] = c.execute(sa.text("SELECT count(*) FROM events WHERE sender_id = :s"),
                                {"s": SENDER}).scalar()
    # a new session: the old one is history, as for Rasa
    tracker = await one.retrieve(SENDER)
    tracker.update(ActionExecuted("action_session_start"))
    tracker.update(SessionStarted())
    tracker.update(UserUttered("new day"))
    await one.save(tracker)
    out["new_session"] = texts(await one.retrieve(SENDER))
    out["new_session_rasa"] = texts(await plain.retrieve(SENDER))
    # erased elsewhere (the admin's privacy erasure deletes the rows): gone here too
    with plain.engine.begin() as c:
        c.execute(sa.text("DELETE FROM events WHERE sender_id = :s"), {"s": SENDER})
    out["after_erasure"] = texts(await one.retrieve(SENDER))
    await turn(one, "hello again")
    out["fresh_start"] = texts(await plain.retrieve(SENDER))
    # saved by a store that never read this conversation: it counts the stored rows as Rasa
    # does and writes only the new ones
    tracker = await one.retrieve(SENDER)
    tracker.update(UserUttered("from a third process"))
    tracker.update(ActionExecuted("action_listen"))
    await EnvTrackerStore(domain=DOMAIN).save(tracker)
    out["uncached_save"] = texts(await plain.retrieve(SENDER))
    out["uncached_save_seen"] = texts(await one.retrieve(SENDER))
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_the_tracker_cache_reads_what_rasa_reads(bot_python: Path, tmp_path: Path,
                                                 database: str) -> None:
    """bot/stores.py keeps each conversation's latest session in memory: another process's
    rows, a new session, an erasure and a save by a store that had not read the conversation
    are seen as Rasa's own store sees them."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["SWITCHBOARD_VAR_DIR"] = str(tmp_path)
    if database == "postgres":
        url = services()["database_url"]  # the session's own database (tests/conftest.py)
        if not url:
            pytest.skip("PostgreSQL not answering (make test sets TEST_DATABASE_URL)")
        env["DATABASE_URL"] = url
    done = subprocess.run([str(bot_python), "-c", CACHE_SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["after_other_process"] == ["hello", "where is my order?", "it is 1002"]
    assert result["same_as_rasa"] is True and result["slot"] == "1002"
    # each event once: session start + 2, 3, 3 (with a slot) and 2 events for the four turns
    assert result["rows"] == 3 + 3 + 3 + 2
    assert result["new_session"] == result["new_session_rasa"] == ["new day"]
    assert result["after_erasure"] is None
    assert result["fresh_start"] == ["hello again"]
    assert result["uncached_save"] == result["uncached_save_seen"] == [
        "hello again", "from a third process"]
