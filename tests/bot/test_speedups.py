"""The faster action-response check accepts and rejects exactly what Rasa's own check does
(bot/speedups.py; its error messages may name the failing event more precisely).

Runs inside Rasa's interpreter (.venv-bot), where the patched code lives.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOT_PY = ROOT / ".venv-bot" / "bin" / "python"

SCRIPT = r"""
import json, sys
import jsonschema
from rasa.core.actions.action import RemoteAction
original = RemoteAction._validate_action_result
import bot  # installs the speed-ups
patched = RemoteAction._validate_action_result
assert patched is not original, "speed-up not installed"
action = RemoteAction("x", None)
out = []
for payload in json.loads(sys.stdin.read()):
    verdicts = []
    for check in (original, patched):
        try:
            check(action, payload)
            verdicts.append("ok")
        except jsonschema.ValidationError as e:
            verdicts.append(e.message)
    out.append(verdicts)
print(json.dumps(out))
"""

PAYLOADS = [
    {"events": [{"event": "slot", "name": "email", "value": "a@b.c"}],
     "responses": [{"text": "hi"}]},
    {"events": [], "responses": [{"text": "x", "buttons": [{"title": "t", "payload": "/p"}]}]},
    {"events": [{"name": "no event key"}], "responses": []},
    {"events": "not a list", "responses": []},
    {},
    {"events": [{"event": "bot", "text": "hello", "data": {"buttons": []},
                 "metadata": {"utter_action": "utter_greet"}},
                {"event": "active_loop", "name": "order_form"},
                {"event": "followup", "name": "action_handoff"},
                {"event": "user", "text": "hi", "parse_data": {"intent": {"name": "greet",
                                                                          "confidence": 1.0},
                                                               "entities": []}},
                {"event": "action", "name": "action_listen", "timestamp": None},
                {"event": "pause"}, {"event": "resume"}, {"event": "restart"},
                {"event": "slot", "name": "order", "value": None, "timestamp": 1.5}],
     "responses": []},
    {"events": [{"event": "no_such_event"}], "responses": []},
    {"events": [{"event": "slot", "name": 3}], "responses": []},
    {"events": [{"event": "slot", "name": "order", "timestamp": "yesterday"}], "responses": []},
    {"events": [{"event": "action"}, "not an event"], "responses": []},
    {"events": [], "responses": "not a list"},
]


def test_same_verdicts_as_rasa() -> None:
    result = subprocess.run([str(BOT_PY), "-c", SCRIPT], input=json.dumps(PAYLOADS), cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    verdicts = json.loads(result.stdout.strip().splitlines()[-1])
    assert [v[0] == "ok" for v in verdicts] == [True, True, False, False, True, True, False,
                                                False, False, False, False]
    for original, patched in verdicts:
        assert (original == "ok") == (patched == "ok"), (original, patched)
