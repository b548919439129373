"""Scripts run in Rasa's interpreter (.venv-bot, Python 3.10) from the suite (our 3.11 one)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BOT_PY = ROOT / ".venv-bot" / "bin" / "python"
# Our packages importable, no telemetry, TensorFlow's start-up chatter off.
RASA_ENV = {"PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_in_rasa(script: str, stdin: str = "", timeout: float = 600) -> Any:
    """What `script`, run by Rasa's Python from the repository root with `stdin`, printed as
    JSON on its last line of output."""
    done = subprocess.run([str(BOT_PY), "-c", script], input=stdin, env={**os.environ, **RASA_ENV},
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
