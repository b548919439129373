"""bot/speedups.py answers as the Rasa code it replaces: the faster action-response check
accepts and rejects exactly what Rasa's own check does (its error messages may name the
failing event more precisely); the graph run without dask parses and predicts as with it; the
event-class table, the kept domain emptiness and the rules looked up by their last action give
Rasa's answers; a training with the cache off hashes nothing for it, one with the cache on
still does.

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


GRAPH_SCRIPT = r"""
import asyncio, json, sys
from rasa.core import processor
from rasa.core.agent import Agent
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.core.events import ActionExecuted, Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from bot import speedups  # installs the speed-ups

assert processor.DaskGraphRunner is speedups.SequentialGraphRunner, "runner not installed"
agents = {}
for name, runner in (("dask", DaskGraphRunner), ("ours", speedups.SequentialGraphRunner)):
    processor.DaskGraphRunner = runner
    agents[name] = Agent.load(sys.argv[1])
    assert type(agents[name].processor.graph_runner) is runner


async def outcomes(agent):
    out = []
    for text in json.loads(sys.argv[2]):
        parsed = await agent.parse_message(text)
        said = UserUttered(text, parsed["intent"], parsed["entities"], parse_data=parsed)
        tracker = DialogueStateTracker.from_events(
            "shop:web:visitor", [ActionExecuted("action_listen"), said], agent.domain.slots)
        prediction = agent.processor._predict_next_with_tracker(tracker)
        out.append({"intent": parsed["intent"]["name"],
                    "ranking": [[r["name"], round(r["confidence"], 6)]
                                for r in parsed["intent_ranking"]],
                    "entities": [[e["entity"], e["value"]] for e in parsed["entities"]],
                    "action": prediction.max_confidence_index,
                    "policy": prediction.policy_name})
    return out

dask, ours = (asyncio.run(outcomes(agents[name])) for name in ("dask", "ours"))
types = sorted({cls.type_name for cls in speedups.all_subclasses(Event)})
lookups = [[name, Event.resolve_by_type(name).__name__,
            speedups._original_resolve_by_type(name).__name__] for name in types]
unknown = []
for call in (lambda: Event.resolve_by_type("topic"),
             lambda: Event.resolve_by_type("nonsense", default=UserUttered).__name__,
             lambda: Event.resolve_by_type("nonsense")):
    try:
        unknown.append(call())
    except ValueError as e:
        unknown.append(str(e))
from rasa.shared.core.domain import Domain
empties = [[Domain.is_empty(d), speedups._original_is_empty(d)]
           for d in (agents["ours"].domain, Domain.empty(), Domain.from_dict({"intents": ["x"]}))]

# The rules that may apply at every step of an order-status conversation (a form: its
# unhappy-path rules too), by the indexed lookup and by Rasa's own.
from rasa.core.policies.rule_policy import RULES, RULES_FOR_LOOP_UNHAPPY_PATH, RulePolicy
from rasa.shared.core.events import ActiveLoop, BotUttered, SessionStarted, SlotSet
assert RulePolicy._get_possible_keys is speedups.get_possible_keys, "rule index not installed"
agent = agents["ours"]
policy = next(node._component for node in agent.processor.graph_runner._instantiated_nodes.values()
              if isinstance(node._component, RulePolicy))

async def said(text):
    parsed = await agent.parse_message(text)
    return UserUttered(text, parsed["intent"], parsed["entities"], parse_data=parsed)

async def conversation():
    return [ActionExecuted("action_session_start"), SessionStarted(),
            ActionExecuted("action_listen"), await said("where is my order?"),
            ActionExecuted("order_status_form"), ActiveLoop("order_status_form"),
            SlotSet("requested_slot", "order_number"), BotUttered("Which order?"),
            ActionExecuted("action_listen"), await said("can I talk to a human"),
            ActionExecuted("action_listen"), await said("#1001"),
            ActionExecuted("order_status_form"), SlotSet("order_number", "1001"),
            SlotSet("requested_slot", "order_email"), ActionExecuted("action_listen"),
            await said("alex@example.com"), ActionExecuted("order_status_form"),
            SlotSet("requested_slot", None), ActiveLoop(None),
            ActionExecuted("action_order_status"), ActionExecuted("action_listen"),
            await said("thanks, bye")]

events = asyncio.run(conversation())
rules = []
for end in range(1, len(events) + 1):
    tracker = DialogueStateTracker.from_events("shop:web:visitor", events[:end],
                                               agent.domain.slots)
    for use_text in (False, True):
        states = policy._prediction_states(tracker, agent.domain, use_text,
                                           rule_only_data=policy._get_rule_only_data())
        for table in (RULES, RULES_FOR_LOOP_UNHAPPY_PATH):
            lookup = policy.lookup[table]
            rules.append([sorted(speedups.get_possible_keys(policy, lookup, states)),
                          sorted(speedups._original_get_possible_keys(policy, lookup, states))])
# Rules whose last state names no action before it (none in our model): a conversation's
# start, an end-to-end text; and a table that changes (training adds to it).
start = [{"user": {"intent": "greet"}}]
by_text = [{"prev_action": {"action_text": "hi"}, "user": {"intent": "greet"}}]
after_listen = [{"prev_action": {"action_name": "action_listen"}, "user": {"intent": "greet"}}]
table = {json.dumps(start): "utter_greet", json.dumps(by_text): "utter_text"}
for grown in (False, True):
    if grown:
        table[json.dumps(after_listen)] = "utter_listen"
    for states in (start, by_text, after_listen, []):
        rules.append([sorted(speedups.get_possible_keys(policy, table, states)),
                      sorted(speedups._original_get_possible_keys(policy, table, states))])
print(json.dumps({"dask": dask, "ours": ours, "lookups": lookups, "unknown": unknown,
                  "empties": empties, "rules": rules}))
"""

MESSAGES = ["where is my order?", "#1001", "alex@example.com", "I want to return the scarf",
            "can I talk to a human", "do you ship to Hungary?", "hi", "thanks, bye"]


def test_graph_runs_without_dask_as_with_it() -> None:
    """Parses (intent ranking, entities) and the next action predicted are the same with the
    sequential runner as with Rasa's dask runner, event classes are found as Rasa finds
    them, including its answers for unknown names, domains are empty when Rasa says so, and
    the rules that may apply at each step of a conversation are the ones Rasa finds."""
    result = subprocess.run(
        [str(BOT_PY), "-c", GRAPH_SCRIPT, str(ROOT / "models" / "switchboard.tar.gz"),
         json.dumps(MESSAGES)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["ours"] == found["dask"]
    assert [o["intent"] for o in found["ours"]][:3] == ["check_order_status", "inform", "inform"]
    assert {o["policy"] for o in found["ours"]} >= {"RulePolicy"}
    assert len(found["lookups"]) > 20
    for name, ours, rasa in found["lookups"]:
        assert ours == rasa, name
    assert found["unknown"] == [None, "UserUttered", "Unknown event name 'nonsense'."]
    assert found["empties"] == [[False, False], [True, True], [False, False]]
    assert len(found["rules"]) > 80
    for ours, rasas in found["rules"]:
        assert ours == rasas
    assert sum(bool(rasas) for _, rasas in found["rules"]) > 20  # rules did apply


TRAINING_SCRIPT = r"""
import json, os, sys, tempfile
from pathlib import Path
import rasa.shared.utils.io
from rasa.engine.training import fingerprinting
import bot  # installs the speed-ups
from rasa.model_training import train_nlu

# What the training cache costs: the fingerprint keys of nodes' inputs (the fingerprint run,
# the training hook) and the hashes of nodes' outputs (the hook).
hashed = []
key = fingerprinting.calculate_fingerprint_key
fingerprint = rasa.shared.utils.io.deep_container_fingerprint
def counted_key(*args, **kwargs):
    hashed.append("key")
    return key(*args, **kwargs)
def counted_fingerprint(*args, **kwargs):
    if sys._getframe(1).f_code.co_filename.endswith("hooks.py"):
        hashed.append("output")
    return fingerprint(*args, **kwargs)
fingerprinting.calculate_fingerprint_key = counted_key
rasa.shared.utils.io.deep_container_fingerprint = counted_fingerprint
work = Path(tempfile.mkdtemp())
(work / "config.yml").write_text(
    "language: en\npipeline:\n- name: WhitespaceTokenizer\n- name: CountVectorsFeaturizer\n"
    "- name: LogisticRegressionClassifier\n")
(work / "nlu.yml").write_text('version: "3.1"\nnlu:\n'
    "- intent: greet\n  examples: |\n    - hello\n    - hi there\n"
    "- intent: bye\n  examples: |\n    - goodbye\n    - see you\n")
found = {}
for cache in ("0", "100"):  # megabytes: off, on
    os.environ["RASA_MAX_CACHE_SIZE"] = cache
    os.environ["RASA_CACHE_DIRECTORY"] = str(work / f"cache-{cache}")
    hashed.clear()
    model = train_nlu(str(work / "config.yml"), str(work / "nlu.yml"), str(work / cache))
    cached = [p for p in (work / f"cache-{cache}").rglob("*") if p.is_file()]
    found[cache] = {"model": bool(model and Path(model).is_file()), "hashed": len(hashed),
                    "cached": len(cached)}
print(json.dumps(found))
"""


def test_a_training_without_its_cache_fingerprints_nothing() -> None:
    """With Rasa's training cache off (as the workshop trains), no node's output is hashed for
    it and the model is trained; with the cache on, outputs are hashed and cached as before."""
    result = subprocess.run([str(BOT_PY), "-c", TRAINING_SCRIPT], cwd=ROOT, capture_output=True,
                            text=True, timeout=300,
                            env={"PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false"})
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["0"] == {"model": True, "hashed": 0, "cached": 0}, found
    assert found["100"]["model"] and found["100"]["hashed"] > 0 and found["100"]["cached"] > 0, \
        found
