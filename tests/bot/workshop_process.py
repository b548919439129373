"""The workshop (bot/workshop.py) as a real process in Rasa's interpreter, for the tests that
call it: tests/bot/test_workshop.py and the admin service's validation
(tests/admin_api/test_training_validate.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]
BOT_PY = ROOT / ".venv-bot" / "bin" / "python"


@contextlib.contextmanager
def running_workshop(tmp: Path, rasa_token: str) -> Iterator[str]:
    """`python -m bot.workshop` on a free loopback port until the block ends; its base URL,
    once Rasa is imported and the base checked (GET /health says ready)."""
    if not BOT_PY.exists():
        pytest.skip("Rasa's environment (.venv-bot) is not installed")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(SWITCHBOARD_VAR_DIR=str(tmp), RASA_TOKEN=rasa_token, WORKSHOP_PORT=str(port),
               PYTHONPATH=str(ROOT), RASA_TELEMETRY_ENABLED="false")
    log = tmp / "workshop.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BOT_PY), "-m", "bot.workshop"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, log, lambda: bool(
            httpx.get(f"{base}/health", timeout=2).json()["ready"]), seconds=120, pause=0.3)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
