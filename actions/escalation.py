"""When the bot brings in a person on its own: after misunderstanding the visitor twice in a row.

A turn is misunderstood when the bot could not make sense of it: NLU fell back
(`nlu_fallback`) and the knowledge route could not answer either, the knowledge route could
not answer what NLU sent it (gibberish is trained as `out_of_scope`, so "asdf" lands there
with confidence), or the policies fell back (`action_fallback`). The count lives in the
`misunderstood_turns` slot: the domain's mapping sets it to 0 on every message NLU understood,
and the two actions that handle a possibly misunderstood turn set it from the count *before*
this turn (`count_this_turn`), because that mapping already ran when they are called.

On the second misunderstood turn in a row the bot apologises (`utter_handing_over_
misunderstood`) and hands the conversation to a person at once: the action returns
`FollowupAction("action_handoff")`, which Rasa runs next whatever the rules or an active form
would predict (also after action_fallback's rewind, which no rule could see). A third guess
would only try the visitor's patience; the handoff queues the thread for the agents' inbox,
says the wait or when the team is back, and pauses the bot (actions/handoff.py).
"""

from __future__ import annotations

from typing import Any, Final

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.answers import opens_with_yes

MISUNDERSTOOD: Final = "misunderstood_turns"
UNANSWERED: Final = "unanswered_question"
HANDOFF_AFTER: Final = 2  # misunderstood turns in a row before a person takes over
HANDOFF_RESPONSE: Final = "utter_handing_over_misunderstood"
HANDOFF_ACTION: Final = "action_handoff"
OFFER_ANSWERS: Final = frozenset({"affirm", "deny"})
# Slots about the last turns only: not carried into a new session (actions/session.py).
TURN_SLOTS: Final = (MISUNDERSTOOD, UNANSWERED)
# Events after which Rasa's slots are back to their initial values.
_RESETS = frozenset({"restart", "reset_slots", "session_started"})


def slot_before_turn(tracker: Tracker, name: str, default: Any = None) -> Any:
    """The slot's value before the visitor's latest message (and what this turn's slot
    mappings made of it). Reverted turns (action_fallback's UserUtteranceReverted) do not
    count as turns, but what their actions set after the revert does. Unlike the forms'
    actions/verification.py `slot_before_turn`, a session start or restart resets it: a count
    must not outlive its session, where a form's slots never meet one."""
    events = tracker.applied_events()
    last_user = max((i for i, e in enumerate(events) if e.get("event") == "user"),
                    default=len(events))
    value = default
    for event in events[:last_user]:
        kind = event.get("event")
        if kind in _RESETS:
            value = default
        elif kind == "slot" and event.get("name") == name:
            value = event.get("value")
    return value


def count_this_turn(tracker: Tracker) -> int:
    """Misunderstood turns in a row, this one included."""
    try:
        before = int(float(slot_before_turn(tracker, MISUNDERSTOOD, 0) or 0))
    except (TypeError, ValueError):
        before = 0
    return max(before, 0) + 1


def misunderstood(tracker: Tracker, dispatcher: CollectingDispatcher,
                  response: str, **message: Any) -> list[EventType]:
    """This turn was not understood: say `response` (the caller sets `handoff_offered`), or on
    the second such turn in a row apologise and hand over to a person; either with `message`'s
    extras (the knowledge route's custom.knowledge, which analytics read)."""
    count = count_this_turn(tracker)
    if count < HANDOFF_AFTER:
        dispatcher.utter_message(response=response, **message)
        return [SlotSet(MISUNDERSTOOD, float(count))]
    dispatcher.utter_message(response=HANDOFF_RESPONSE, **message)
    return [SlotSet(MISUNDERSTOOD, float(count)), FollowupAction(HANDOFF_ACTION)]


def understood() -> list[EventType]:
    """This turn was understood (the knowledge route answered): the count starts over."""
    return [SlotSet(MISUNDERSTOOD, 0.0)]


def unchanged(tracker: Tracker) -> list[EventType]:
    """This turn neither counts nor resets (the bot failed on its side): the count before it,
    whatever this turn's mapping made of it."""
    return [SlotSet(MISUNDERSTOOD, float(count_this_turn(tracker) - 1))]


def answers_the_offer(tracker: Tracker) -> bool:
    """A yes or no while a person is on offer: the answer to that offer, also while a form
    waits for an order number or an email (its validator leaves the message to the rules)."""
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    # Also once action_handoff_declined took the "no thanks" (the form runs again after it in
    # the same turn, and must not read the answer to the offer as its own: "That doesn't look
    # like an email address").
    return intent in OFFER_ANSWERS and bool(
        tracker.get_slot("handoff_offered") or slot_before_turn(tracker, "handoff_offered"))


def offered_last_turn(tracker: Tracker) -> bool:
    """The bot's answer to the visitor's previous message offered a person, and the offer
    still stands (an offer the visitor let pass is not answered three messages later)."""
    if not tracker.get_slot("handoff_offered"):
        return False
    events = tracker.events
    users = [i for i, e in enumerate(events) if e.get("event") == "user"]
    if not users:
        return False
    start = users[-2] if len(users) > 1 else 0
    return any(e.get("event") == "slot" and e.get("name") == "handoff_offered"
               and e.get("value") is True for e in events[start:users[-1]])


def offered_this_turn(tracker: Tracker) -> bool:
    """The bot offered a person in answer to the visitor's latest message (the knowledge route
    could not answer it) and that offer still stands. A form that asks its question after
    that stays silent (its ask actions): the offer and the question at once would leave the
    visitor unsure which to answer. The form still waits: an answer typed next is taken, a
    "no thanks" to the offer brings the question back (data/rules)."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return False
        if event.get("event") == "slot" and event.get("name") == "handoff_offered":
            return event.get("value") is True
    return False


def says_yes_to_the_offer(tracker: Tracker) -> bool:
    """A yes with more words right after the bot offered a person: "yes pls, the coat's
    zipper broke" after "…a person from our team can look at your case". NLU reads such a
    message by its other words (request_return, a question), so the `affirm` rules never see
    it; the form or the knowledge route that gets it hands over instead (`HANDOFF_ACTION`)."""
    text = str(tracker.latest_message.get("text") or "")
    return not text.startswith("/") and opens_with_yes(text) and offered_last_turn(tracker)


def misunderstood_twice(tracker: Tracker) -> bool:
    """Whether this turn is the second misunderstood one in a row (the handoff it led to runs
    in the same turn, after the action that counted it)."""
    try:
        return float(tracker.get_slot(MISUNDERSTOOD) or 0) >= HANDOFF_AFTER
    except (TypeError, ValueError):
        return False
