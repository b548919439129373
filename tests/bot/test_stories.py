"""The conversation tests in data/tests pass on the trained model, as `make rasa-test` runs them:
Rasa's own `rasa test core`, every user text parsed and every action predicted, none executed.
Any wrong prediction fails the run (`--fail-on-prediction-errors`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.bot.in_rasa import RASA_ENV, ROOT

RASA = ROOT / ".venv-bot" / "bin" / "rasa"
MODEL = ROOT / "models" / "switchboard.tar.gz"


def test_every_conversation_test_passes_on_the_trained_model(tmp_path: Path) -> None:
    env = {**os.environ, **RASA_ENV}
    done = subprocess.run(
        [str(RASA), "test", "core", "--stories", "data/tests", "--model", str(MODEL),
         "--out", str(tmp_path), "--fail-on-prediction-errors"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    failed = tmp_path / "failed_test_stories.yml"
    shown = failed.read_text() if failed.exists() else ""
    assert done.returncode == 0, shown + done.stderr[-3000:]
    report = json.loads((tmp_path / "story_report.json").read_text())
    stories = report["conversation_accuracy"]
    assert stories["total"] >= 30  # data/tests' stories were all read
    assert stories["correct"] == stories["total"], shown
