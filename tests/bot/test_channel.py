"""bot/channel.py in Rasa's interpreter: the trained model answers on our channel with the
intent, confidence and actions of each turn, as the gateway records them.

Rasa runs as in production (`python -m bot.serve run` with the trained model and both
channels of credentials.yml); its action server is a small scripted one here, over real HTTP,
speaking rasa-sdk's webhook format (the real actions need shops and knowledge indexes; the
channel only cares which actions ran and what they said).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import FakeServer, RecordedRequest, Response
from tests.servers import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]
BOT_PY = ROOT / ".venv-bot" / "bin" / "python"
MODEL = ROOT / "models" / "switchboard.tar.gz"
SLOTS = 2  # BOT_TURN_SLOTS of the Rasa under test
SOURCES = [{"title": "Shipping", "url": None, "document": "shipping.md"}]

# What each custom action answers: (events, responses), rasa-sdk's webhook answer.
SCRIPT: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "action_session_start": ([{"event": "session_started"},
                              {"event": "action", "name": "action_listen"}], []),
    "action_greet": ([], [{"response": "utter_greet"}]),
    "action_answer_from_knowledge": (
        [], [{"text": "We ship within 2 days.",
              "custom": {"knowledge": {"mode": "extractive", "sources": SOURCES}}}]),
    "action_handoff": ([{"event": "pause"}], [{"response": "utter_handoff_requested"}]),
}


class ActionServer(FakeServer):
    """rasa-sdk's POST /webhook, scripted by SCRIPT; anything else runs and says nothing.
    `hold` makes an action take that many seconds; `most` is the most calls running at once."""

    def __init__(self) -> None:
        super().__init__()
        self.called: list[str] = []
        self.hold: dict[str, float] = {}
        self.running = self.most = 0
        self._counting = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.base_url}/webhook"

    def authorized(self, request: RecordedRequest) -> bool:
        return True

    def route(self, request: RecordedRequest) -> Response:
        body = request.json()
        action = body["next_action"]
        with self._counting:
            self.called.append(action)
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.hold.get(action, 0.0))
        with self._counting:
            self.running -= 1
        events, responses = SCRIPT.get(action, ([], []))
        return 200, {}, {"events": events, "responses": responses}


@pytest.fixture(scope="module")
def actions() -> Iterator[ActionServer]:
    server = ActionServer().start()
    yield server
    server.stop()


METRICS_PORT = free_port()


@pytest.fixture(scope="module")
def rasa(actions: ActionServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not BOT_PY.exists() or not MODEL.exists():
        pytest.skip("Rasa's environment (.venv-bot) or the trained model is missing")
    tmp = tmp_path_factory.mktemp("channel")
    endpoints = tmp / "endpoints.yml"
    endpoints.write_text(f"action_endpoint:\n  url: {actions.url}\n"
                         "tracker_store:\n  type: bot.stores.EnvTrackerStore\n"
                         "lock_store:\n  type: bot.stores.EnvLockStore\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(SWITCHBOARD_VAR_DIR=str(tmp), RASA_TOKEN="t", METRICS_HOST="127.0.0.1",
               BOT_METRICS_PORT=str(METRICS_PORT),
               PYTHONPATH=str(ROOT), RASA_TELEMETRY_ENABLED="false", SANIC_WORKERS="1",
               BOT_TURN_SLOTS=str(SLOTS))
    log = tmp / "rasa.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BOT_PY), "-m", "bot.serve", "run", "-i", "127.0.0.1", "-p", str(port),
             "--model", str(MODEL), "--credentials", str(ROOT / "credentials.yml"),
             "--endpoints", str(endpoints)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def answers() -> bool:
            # Channels answer before the model is loaded: wait for a real turn.
            return (httpx.get(f"{base}/webhooks/switchboard/", timeout=2).status_code == 200
                    and turn(base, "warm:rest:up", "hello")["turn"] is not None)

        wait_until_ready(proc, log, answers, seconds=180)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def turn(base: str, sender: str, text: str) -> dict[str, Any]:
    answer = httpx.post(f"{base}/webhooks/switchboard/webhook", timeout=30,
                        json={"sender": sender, "message": text,
                              "metadata": {"tenant_id": "shop", "channel": "rest"}})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def later_turn(base: str, delay: float, sender: str, text: str) -> dict[str, Any]:
    """`turn` after `delay` seconds, beside others. The client is made first: making one takes
    long enough on a loaded machine to upset the delays."""
    async with httpx.AsyncClient(timeout=20) as client:
        await asyncio.sleep(delay)
        answer = await client.post(f"{base}/webhooks/switchboard/webhook",
                                   json={"sender": sender, "message": text,
                                         "metadata": {"tenant_id": "shop", "channel": "rest"}})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_a_turn_comes_back_with_its_intent_confidence_and_actions(rasa: str) -> None:
    greeting = turn(rasa, "shop:rest:v1", "hello there")
    assert greeting["turn"]["intent"] == "greet"
    assert 0.5 < greeting["turn"]["confidence"] <= 1.0
    assert greeting["turn"]["actions"] == ["action_greet"]
    assert greeting["turn"]["responses"] == ["utter_greet"]
    assert greeting["turn"]["paused"] is False
    assert greeting["messages"][0]["text"].startswith("Hi!")  # the messages as REST has them


def test_knowledge_sources_and_a_handoff_then_a_paused_conversation(rasa: str) -> None:
    answer = turn(rasa, "shop:rest:v2", "how long does shipping take to canada?")
    assert answer["turn"]["actions"] == ["action_answer_from_knowledge"], answer
    assert answer["messages"][-1]["custom"]["knowledge"]["sources"] == SOURCES
    handoff = turn(rasa, "shop:rest:v2", "I want to talk to a human")
    assert handoff["turn"]["intent"] == "human_handoff"
    assert handoff["turn"]["actions"] == ["action_handoff"]
    assert handoff["turn"]["responses"] == ["utter_handoff_requested"]
    assert handoff["turn"]["paused"] is True
    # A person owns it now: Rasa records the message, says and runs nothing.
    waiting = turn(rasa, "shop:rest:v2", "where is my order?")
    assert waiting == {"messages": [], "turn": {
        "intent": "check_order_status", "confidence": waiting["turn"]["confidence"],
        "actions": [], "responses": [], "paused": True, "model": "base"}}


def test_the_plain_rest_channel_still_answers(rasa: str) -> None:
    answer = httpx.post(f"{rasa}/webhooks/rest/webhook", timeout=30,
                        json={"sender": "shop:rest:v3", "message": "are you a bot?"})
    assert answer.status_code == 200
    assert "virtual assistant" in answer.json()[0]["text"]


@pytest.mark.asyncio
async def test_a_slow_action_server_holds_up_no_one(rasa: str, actions: ActionServer) -> None:
    """Five visitors ask at once, 50 ms apart, a question whose action takes 1.5 s: a turn kept
    waiting by the slow action server gives its slot up (bot/turn_gate.py), so all five wait on
    it together, more than BOT_TURN_SLOTS, and all five are answered. (That turns past the slots
    start in arrival order is tests/bot/test_turn_gate.py's: here the order the action server
    is asked in also depends on how two turns inside the slots interleave, and on when a loaded
    machine's client gets each request out.)"""
    actions.hold["action_answer_from_knowledge"] = 1.5
    senders = [f"shop:rest:slot{n}" for n in range(5)]
    try:
        actions.most = 0
        answers = await asyncio.gather(*(
            later_turn(rasa, 0.05 * n, senders[n], "how long does shipping take?")
            for n in range(5)))
    finally:
        actions.hold.clear()
    assert [a["turn"]["actions"] for a in answers] == [["action_answer_from_knowledge"]] * 5
    assert [a["messages"][0]["text"] for a in answers] == ["We ship within 2 days."] * 5
    assert actions.most == 5 > SLOTS


@pytest.mark.asyncio
async def test_a_burst_from_one_visitor_is_answered_message_by_message(
        rasa: str, actions: ActionServer) -> None:
    """Four messages of one conversation at once, more than BOT_TURN_SLOTS, each with a slow
    action: the turns waiting for the conversation's lock hold no slot, so the one holding it
    gets back in after its action call and all four are answered."""
    actions.hold["action_answer_from_knowledge"] = 0.3
    try:
        answers = await asyncio.gather(*(
            later_turn(rasa, 0.02 * n, "shop:rest:burst", f"how long is shipping? {n}")
            for n in range(SLOTS + 2)))
    finally:
        actions.hold.clear()
    assert [a["turn"]["actions"] for a in answers] == [["action_answer_from_knowledge"]] * 4


def turns_waited() -> tuple[float, float]:
    """switchboard_bot_turn_wait_seconds' count and sum, from Rasa's metrics endpoint."""
    text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5).text
    found = {sample.name: sample.value for family in text_string_to_metric_families(text)
             for sample in family.samples if sample.name.startswith(
                 "switchboard_bot_turn_wait_seconds_")}
    return found.get("switchboard_bot_turn_wait_seconds_count", 0.0), \
        found.get("switchboard_bot_turn_wait_seconds_sum", 0.0)


@pytest.mark.asyncio
async def test_the_wait_for_a_slot_is_measured(rasa: str, actions: ActionServer) -> None:
    """Every turn's wait for a slot goes into a histogram on BOT_METRICS_PORT: three visitors
    at once with two slots and an action that holds its slot (within the patience), so the
    third waits."""
    count, total = turns_waited()
    actions.hold["action_answer_from_knowledge"] = 0.08
    try:
        await asyncio.gather(*(later_turn(rasa, 0.0, f"shop:rest:wait{n}", "shipping time?")
                               for n in range(SLOTS + 1)))
    finally:
        actions.hold.clear()
    after, waited = turns_waited()
    assert after == count + SLOTS + 1
    assert waited - total > 0.05  # the third waited for one of the first two


FACTS_SCRIPT = r"""
import json
from collections import deque
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from bot.channel import turn_facts

class Counted(deque):
    # The tracker's events, counting how many a reader visits from the end.
    visited = 0
    def __reversed__(self):
        for event in deque.__reversed__(self):
            Counted.visited += 1
            yield event

def said(text, intent):
    return [UserUttered(text, {"name": intent, "confidence": 0.9}),
            ActionExecuted("action_extract_slots"), ActionExecuted("action_greet"),
            BotUttered("Hi!", metadata={"utter_action": "utter_greet"}),
            ActionExecuted("action_listen")]

events = [ActionExecuted("action_listen")]
for i in range(500):
    events += said(f"hello {i}", "greet")
events += [UserUttered("are you a bot?", {"name": "bot_challenge", "confidence": 0.987654}),
           ActionExecuted("action_extract_slots"), ActionExecuted("utter_iamabot"),
           BotUttered("I am a virtual assistant.", metadata={"utter_action": "utter_iamabot"}),
           ActionExecuted("action_listen")]
tracker = DialogueStateTracker.from_events("shop:rest:long", events)
tracker.events = Counted(tracker.events)
facts = turn_facts(tracker)
print(json.dumps({"facts": facts, "visited": Counted.visited, "events": len(tracker.events)}))
"""


def test_the_turn_facts_are_read_from_the_end_of_a_long_conversation() -> None:
    """A conversation of 500 earlier turns: the facts are the latest turn's alone, found by
    reading back to its message (5 events of 2,506), so their cost does not grow with it."""
    if not BOT_PY.exists():
        pytest.skip("Rasa's environment (.venv-bot) is missing")
    ran = subprocess.run([str(BOT_PY), "-c", FACTS_SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout.strip().splitlines()[-1])
    assert answer["facts"] == {"intent": "bot_challenge", "confidence": 0.9877,
                               "actions": ["utter_iamabot"], "responses": ["utter_iamabot"],
                               "paused": False}
    assert answer["events"] == 2506 and answer["visited"] == 5
