"""Rasa's channels, scripted, over real HTTP: REST (`POST /webhooks/rest/webhook`) and ours
(`POST /webhooks/switchboard/webhook`, bot/channel.py).

Answers like Rasa does: on REST a list of bot messages for the sender; on ours
{"messages": [...], "turn": {"intent", "confidence", "actions", "responses", "paused"}}.
What it answers depends on the text: "echo: <text>" by default (intent "inform", action
"action_echo"); "offer" adds two buttons; "long" is answered by two messages (a reply that goes
out as two provider messages); "slow" takes 0.3 s (it counts how many it answers at once);
"boom" is a 500. What it makes of it (`understand`): "hi"/"hello" greet; "agent"/"human"
human_handoff with action_handoff, after which the sender's conversation is paused (answered
by nothing, as Rasa does while a person owns it); "question ..." a knowledge answer with one
source (in the text's message: the gateway reads either shape), "unknown question ..." the
knowledge route abstaining; "gibberish" nlu_fallback. With `silent=True` it answers no
message to anything, as Rasa does when the action server is down.

`POST /webhooks/switchboard/events` (bot/tracker_events.py: the admin service appends an
agent's reply and a resume) is recorded in `tracker_events`: (sender id, the events, the
Authorization header), answered 200.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.fakes import FakeServer, RecordedRequest, Response

CHOICES = [{"title": "Yes, please", "payload": "/affirm"},
           {"title": "No, thanks", "payload": "/deny"}]
SOURCES = [{"title": "Shipping", "url": "https://demo.example/shipping", "document": "ship.md"}]
KNOWLEDGE = {"knowledge": {"mode": "extractive", "cached": False, "sources": SOURCES}}


class RasaFake(FakeServer):
    def __init__(self, silent: bool = False) -> None:
        super().__init__()
        self.silent = silent
        self.seen: list[dict[str, Any]] = []  # every request body, in order
        self.paused: set[str] = set()  # senders handed to a person
        # POST /webhooks/switchboard/events: (sender, events, Authorization)
        self.tracker_events: list[tuple[str, Any, str | None]] = []
        self.in_flight = 0
        self.most_in_flight = 0  # turns answered at once ("slow" ones)
        self._counting = threading.Lock()

    def texts(self) -> list[str]:
        return [body["message"] for body in self.seen]

    def answer(self, body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        text = body["message"]
        if text == "slow":
            with self._counting:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            time.sleep(0.3)
            with self._counting:
                self.in_flight -= 1
        if text == "boom":
            return 500, []
        if self.silent:
            return 200, []
        reply: dict[str, Any] = {"recipient_id": body["sender"], "text": f"echo: {text}"}
        if text == "offer":
            reply["buttons"] = CHOICES
        if text == "long":
            return 200, [{**reply, "text": "part 1"}, {**reply, "text": "part 2"}]
        return 200, [reply]

    def understand(self, body: dict[str, Any],
                   messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The messages as our channel answers them, and what the fake made of the text."""
        text, sender = body["message"], body["sender"]
        lowered = text.lower().strip()
        turn: dict[str, Any] = {"intent": "inform", "confidence": 0.91,
                                "actions": ["action_echo"], "responses": [], "paused": False}
        if sender in self.paused:
            return [], {**turn, "actions": [], "paused": True}
        if lowered in ("hi", "hello"):
            turn.update(intent="greet", confidence=0.98, actions=["action_greet"])
        elif lowered.startswith(("agent", "human")):
            self.paused.add(sender)
            turn.update(intent="human_handoff", confidence=0.97, actions=["action_handoff"],
                        responses=["utter_handoff_requested"], paused=True)
        elif lowered == "gibberish":
            turn.update(intent="nlu_fallback", confidence=0.12,
                        actions=["action_answer_from_knowledge"],
                        responses=["utter_knowledge_not_found"])
        elif lowered.startswith("unknown question"):
            turn.update(intent="ask_question", confidence=0.88,
                        actions=["action_answer_from_knowledge"],
                        responses=["utter_knowledge_not_found"])
            messages = [{**m, "custom": {"knowledge": {"mode": "abstained"}}} for m in messages]
        elif lowered.startswith("question"):
            turn.update(intent="ask_question", confidence=0.93,
                        actions=["action_answer_from_knowledge"])
            messages = [{**m, "custom": KNOWLEDGE} for m in messages]
        return messages, turn

    def authorized(self, request: RecordedRequest) -> bool:
        return True  # the tracker's JWT is recorded for the tests to check

    def route(self, request: RecordedRequest) -> Response:
        body = request.json()
        path = request.path
        if path == "/webhooks/switchboard/events":
            sender, events = body["sender"], body["events"]
            self.tracker_events.append((sender, events, request.headers.get("authorization")))
            if any(event.get("event") == "resume" for event in events):
                self.paused.discard(sender)
            return 200, {}, {"appended": len(events)}
        self.seen.append(body)
        status, messages = self.answer(body)
        if status != 200:
            return status, {}, b""
        if path.startswith("/webhooks/switchboard/"):
            messages, turn = self.understand(body, messages)
            return status, {}, {"messages": messages, "turn": turn}
        return status, {}, messages
