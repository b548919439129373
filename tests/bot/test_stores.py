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
