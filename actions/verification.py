"""Shared base for forms that act on one order: collect number + email, then verify them.

Nothing about an order is said until the pair matches. A wrong pair clears both slots and the
form asks again; after MAX_ATTEMPTS failures the form stops and the submit action offers a
person. The same message is used for "no such order" and "wrong email" on purpose.

A verified order is a short-lived fact of one conversation, not a property of a sender id (a
REST sender or an email From is whatever the client says it is): `verified_at` holds when the
pair was proved or last used, and past the shop's `verification_expiry_minutes` the proof is
forgotten (number, email and all) and the form asks again. `verified_order()` is what every
action that reveals an order goes through, so none can act on an older proof; session start
carries none of it over (actions/session.py).

Failures also count across senders and sessions (actions/attempts.py): past a limit for the
email, the order number or the client's address, no check runs and the visitor is told to wait
or offered a person. On email, the From header proves nothing by itself: an order is checked
only when the provider reported that the sender's domain passed DMARC (or SPF and DKIM,
aligned); otherwise the bot says where to verify instead (the web chat, or a reply from the
order's own address) and answers everything else as usual. When the provider did vouch, the
address the mail came from is the order's email until the visitor gives another: the order is
checked with it at once (a miss is a try, as a typed email's would be, and is said plainly);
it is not tried again for that order in the conversation.

A new order number in a conversation that proved another order is tried with the email proved
for that one (a household's orders often share it). When they do not match, no try is used and
nothing is counted (the visitor never said the order was theirs under that email): the number
stays and `action_ask_email` asks which email goes with it. An email typed for it is a try.

What the visitor types while the form asks is read by `extract_<slot>` (actions/answers.py):
an answer that fits is taken whatever NLU thought of the message; a question or a request
with a rule of its own is left alone, so the form rejects the turn and the rule answers
(data/rules); anything else is passed to `validate_<slot>`, which says what it needs. A
message that asks for the other flow in words of its own ("forget the return, where is my
order #1001?", `switches_flow`) is rejected before anything in it is taken, whatever Rasa's
from_entity mappings filled, so the rule for the switch runs. A yes with more words to the
person the bot just offered ("yes pls, the zipper broke", which NLU may read as a return)
ends the form at its start and hands over (`STOP_PERSON_WANTED`).
"""

from __future__ import annotations

import abc
import logging
import re
import time
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecutionRejected, EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from actions import cards, escalation
from actions.answers import (
    Turn,
    email_in,
    leads_elsewhere,
    order_number_in,
    switches_flow,
)
from actions.attempts import Lockout
from actions.commerce.base import BackendError, Order, normalise_email, normalise_order_number
from actions.runtime import runtime
from actions.tenancy import NoTenant, channel_of, parse_sender_id, tenant_of
from core import logs
from tenants import Tenant

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
_ORDER_NUMBER = re.compile(r"[A-Z0-9][A-Z0-9-]{2,19}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")

# Values of the `flow_stop_reason` slot.
STOP_VERIFICATION_FAILED = "verification_failed"
STOP_NOT_ELIGIBLE = "not_eligible"
STOP_BACKEND_UNAVAILABLE = "backend_unavailable"
STOP_NO_TENANT = "no_tenant"
STOP_LOCKED = "verification_locked"  # too many failures for this email, order or client
STOP_UNPROVEN_SENDER = "unproven_sender"  # an email whose From the provider did not vouch for
STOP_PERSON_WANTED = "person_wanted"  # a yes to the person just offered opened the form

# What a visitor proved about an order; forgotten together when the proof expires.
VERIFIED_AT = "verified_at"  # unix time the pair was verified or last used to reveal the order
IDENTITY_SLOTS = ("order_number", "email", "verified_order", VERIFIED_AT)
# The order is not under the address a vouched email sender writes from (`sender_address`).
NOT_UNDER_SENDER = "utter_order_not_under_sender"


def _metadata(tracker: Tracker) -> dict[str, Any]:
    """What the gateway sent with the latest message (connectors/messages.py rasa_metadata)."""
    metadata = (tracker.latest_message or {}).get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def client_of(tracker: Tracker) -> str | None:
    """The address failed checks are counted under besides the email and the order: what the
    gateway saw of the client, else the visitor's address on a provider channel."""
    address = _metadata(tracker).get("client_address")
    if isinstance(address, str) and address:
        return address
    try:
        scoped = parse_sender_id(tracker.sender_id)
    except NoTenant:
        return None
    return scoped.user_key if scoped.channel in ("sms", "whatsapp", "email") else None


def sender_unproven(tracker: Tracker) -> bool:
    """An email conversation whose latest message the provider did not vouch for (DMARC)."""
    return (channel_of(tracker) == "email"
            and _metadata(tracker).get("sender_authenticated") is not True)


def sender_address(tracker: Tracker) -> str | None:
    """The address an email conversation writes from, when the provider vouched for it in the
    latest message: the order's email unless the visitor gives another."""
    if channel_of(tracker) != "email" or sender_unproven(tracker):
        return None
    address = normalise_email(parse_sender_id(tracker.sender_id).user_key)
    return address if _EMAIL.fullmatch(address) else None


def sender_refused(tracker: Tracker, number: str) -> bool:
    """Whether the sender's address was already checked for order `number` in this
    conversation and the order was not under it (`NOT_UNDER_SENDER` said, then the number kept
    by the same action): it is not tried again, whatever the visitor says next."""
    refused, checking = False, False
    for event in tracker.events:
        kind = event.get("event")
        if kind == "bot":
            checking = (event.get("metadata") or {}).get("utter_action") == NOT_UNDER_SENDER
        elif kind == "user":
            checking = False
        elif checking and kind == "slot" and event.get("name") == "order_number":
            refused = refused or event.get("value") == number
            checking = False
    return refused


def _first(value: Any) -> str:
    """Slots filled from entities can hold a list when a message had several matches."""
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "")


class VerifiedOrderForm(FormValidationAction, abc.ABC):
    @abc.abstractmethod
    def name(self) -> str:
        """Abstract, so rasa-sdk's executor does not register this base as an action."""

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        # An empty list ends the form; the submit action explains why.
        if tracker.get_slot("flow_stop_reason"):
            return []
        return domain_slots

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if self.asked(tracker) is not None and switches_flow(Turn.of(tracker.latest_message),
                                                             self.form_name()):
            # "Actually forget the return, where is my order #1001?": neither the number in
            # it (nor what Rasa's from_entity mapping made of it) is this form's answer. The
            # form rejects the turn and the rule for the switch runs (data/rules), which
            # starts the other form with the number already filled.
            return [ActionExecutionRejected(self.form_name())]
        return await super().run(dispatcher, tracker, domain)

    def asked(self, tracker: Tracker) -> str | None:
        """The slot this form asked for in its last message (None while it starts)."""
        if tracker.active_loop_name != self.form_name():
            return None
        return tracker.get_slot("requested_slot")

    def others_given(self, slot: str, tracker: Tracker, domain: DomainDict) -> bool:
        """NLU filled another of the form's slots from this message ("sorry, it's 1001" while
        the email is asked): the message answered that, not the question."""
        candidates = tracker.slots_to_validate()
        return any(value is not None for name, value in candidates.items()
                   if name != slot and name in self.domain_slots(domain))

    def free_answer(self, slot: str, value: Any, tracker: Tracker,
                    domain: DomainDict) -> dict[str, Any]:
        """What to extract for `slot` from the latest message: `value` when the message holds
        one, the raw text when it tried to answer and failed (the validator then explains),
        nothing when it is not about the question (or NLU already found the slot)."""
        if self.asked(tracker) != slot or tracker.slots_to_validate().get(slot) is not None:
            return {}
        turn = Turn.of(tracker.latest_message)
        if value:
            return {slot: value}
        if (leads_elsewhere(turn, self.form_name()) or escalation.answers_the_offer(tracker)
                or self.others_given(slot, tracker, domain)):
            return {}
        return {slot: turn.text}

    async def extract_order_number(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        turn = Turn.of(tracker.latest_message)
        found = None if turn.is_payload else order_number_in(turn.text)
        return self.free_answer("order_number", found, tracker, domain)

    async def extract_email(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        turn = Turn.of(tracker.latest_message)
        found = None if turn.is_payload else email_in(turn.text)
        return self.free_answer("email", found, tracker, domain)

    def validate_order_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        number = normalise_order_number(_first(value))
        if cards.masked_digits(number, str(tracker.latest_message.get("text") or "")):
            # The last four digits of a card number the gateway masked (a model trained
            # before its patterns left them out tags them): no answer, nothing to explain.
            return {"order_number": slot_before_turn(tracker, "order_number")}
        # Order numbers always have a digit: "DUNNO" typed as an answer is not one.
        if not _ORDER_NUMBER.fullmatch(number) or not any(c.isdigit() for c in number):
            return self._invalid("order_number", "utter_invalid_order_number", dispatcher, tracker)
        return {"order_number": number}

    def validate_email(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        email = normalise_email(_first(value))
        if not _EMAIL.fullmatch(email):
            return self._invalid("email", "utter_invalid_email", dispatcher, tracker)
        return {"email": email}

    def _invalid(self, slot: str, response: str, dispatcher: CollectingDispatcher,
                 tracker: Tracker) -> dict[str, Any]:
        asked = self.asked(tracker)
        if asked is not None and asked != slot:
            # NLU tagged something in an answer to another question (the "2" that picks the
            # second item as an order number): keep what the visitor gave for this slot.
            return {slot: slot_before_turn(tracker, slot)}
        dispatcher.utter_message(response=response)
        return {slot: None}

    async def get_validation_events(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events = await super().get_validation_events(dispatcher, tracker, domain)
        if tracker.get_slot("flow_stop_reason"):
            return events
        if self.asked(tracker) is None and escalation.says_yes_to_the_offer(tracker):
            # "yes pls, the coat's zipper broke" right after "a person from our team can look
            # at your case": NLU heard a return, the visitor accepted the person.
            return [SlotSet("flow_stop_reason", STOP_PERSON_WANTED)]
        if sender_unproven(tracker):
            dispatcher.utter_message(response="utter_verify_elsewhere")
            return events + [SlotSet("order_number", None), SlotSet("email", None),
                             SlotSet("flow_stop_reason", STOP_UNPROVEN_SENDER)]
        forgotten = await self._forget_stale_proof(tracker)
        tracker.add_slots(forgotten)
        events += forgotten
        number, email = tracker.get_slot("order_number"), tracker.get_slot("email")
        own = sender_address(tracker)
        if number and not email and own and not sender_refused(tracker, number):
            # The provider vouched for the address this mail came from: it is the email the
            # visitor would type. Checked once per order number; a miss is a try as a typed
            # email's would be (counted here and across conversations), and said plainly.
            given = [SlotSet("email", own)]
            tracker.add_slots(given)
            return events + given + await self._verify(number, own, dispatcher, tracker,
                                                       by_sender=True)
        if not (number and email):
            return events
        changed = {"order_number", "email"} & set(tracker.slots_to_validate())
        if tracker.get_slot("verified_order") == number and not changed:
            return events
        return events + await self._verify(number, email, dispatcher, tracker,
                                           counts=not email_carried_over(number, email, tracker))

    async def _forget_stale_proof(self, tracker: Tracker) -> list[EventType]:
        """Forget a verified order (and the email proved with it) once the shop's quiet period
        has passed: whoever writes now must prove the order again. What the visitor gives in
        this very message stays."""
        if not tracker.get_slot("verified_order"):
            return []
        try:
            tenant = await tenant_of(tracker)
        except NoTenant:
            return []  # _verify stops the form
        if proof_is_fresh(tracker, tenant):
            return []
        given = tracker.slots_to_validate()
        return [SlotSet("verified_order", None), SlotSet(VERIFIED_AT, None)] + [
            SlotSet(slot, None) for slot in ("email",) if slot not in given]

    async def _verify(
        self, number: str, email: str, dispatcher: CollectingDispatcher, tracker: Tracker,
        counts: bool = True, by_sender: bool = False,
    ) -> list[EventType]:
        """Check the pair; a miss is a failed try unless `counts` is False (the email was
        proved for another order and not given for this one: the form asks for it).
        `by_sender`: the email is the vouched sender's own address, not typed; on a miss the
        number stays and the visitor is told the order is not under that address."""
        cleared = [SlotSet("order_number", None), SlotSet("email", None),
                   SlotSet("verified_order", None), SlotSet(VERIFIED_AT, None)]
        try:
            tenant = await tenant_of(tracker)
            attempts = runtime().attempts
            check = attempts.check(tenant.id, email=email, order_number=number,
                                   client=client_of(tracker))
            lockout = await attempts.locked(check)
            if lockout is not None:
                return cleared + self._locked(lockout, dispatcher)
            order = await runtime().find_order(tenant, number, email)
        except NoTenant:
            log.warning("form without tenant", extra={"sender": logs.visitor(tracker.sender_id)})
            return [SlotSet("flow_stop_reason", STOP_NO_TENANT)]
        except BackendError:
            log.exception("order backend failed", extra={"sender": logs.visitor(tracker.sender_id)})
            dispatcher.utter_message(response="utter_backend_unavailable")
            return [SlotSet("flow_stop_reason", STOP_BACKEND_UNAVAILABLE),
                    SlotSet("handoff_offered", True)]
        if order is None and not counts:
            # The visitor never said this order was theirs under that email: no try is used
            # and nothing is counted against the email, the order or the client. The number
            # stays; action_ask_email asks which email goes with it.
            log.info("known email is not the new order's",
                     extra={"tenant_id": tenant.id, "sender": logs.visitor(tracker.sender_id)})
            return [SlotSet("email", None), SlotSet("verified_order", None),
                    SlotSet(VERIFIED_AT, None)]
        if order is None:
            failures = int(tracker.get_slot("verification_failures") or 0) + 1
            log.info("order verification failed",
                     extra={"tenant_id": tenant.id, "attempt": failures,
                            "sender": logs.visitor(tracker.sender_id)})
            cleared.append(SlotSet("verification_failures", float(failures)))
            lockout = await attempts.failed(check)
            if lockout is not None:
                return cleared + self._locked(lockout, dispatcher)
            if failures >= MAX_ATTEMPTS:
                return cleared + [SlotSet("flow_stop_reason", STOP_VERIFICATION_FAILED)]
            if by_sender:
                # The number stays (restated, so `sender_refused` finds it after the message)
                # and the form asks only for the email the order was placed with.
                dispatcher.utter_message(response=NOT_UNDER_SENDER)
                return [SlotSet("order_number", number), *cleared[1:]]
            dispatcher.utter_message(
                response="utter_order_not_found", attempt=failures + 1, max_attempts=MAX_ATTEMPTS
            )
            return cleared
        events: list[EventType] = [SlotSet("verified_order", order.number),
                                   SlotSet("verification_failures", 0.0), *verified_now()]
        tracker.add_slots(events)
        return events + await self.on_verified(tenant, order, dispatcher, tracker)

    @staticmethod
    def _locked(lockout: Lockout, dispatcher: CollectingDispatcher) -> list[EventType]:
        dispatcher.utter_message(response="utter_verification_locked",
                                 minutes=lockout.minutes_left())
        return [SlotSet("flow_stop_reason", STOP_LOCKED), SlotSet("handoff_offered", True)]

    async def on_verified(
        self, tenant: Tenant, order: Order, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        """Hook: the order was just verified (check eligibility, resolve items...)."""
        return []


def email_carried_over(number: str, email: str, tracker: Tracker) -> bool:
    """Whether `email` is the one proved for another order earlier in the conversation, not
    given for `number` ("and where is order 1004?" after #1001 with alex@example.com): typing
    it again in this message is giving it."""
    verified = tracker.get_slot("verified_order")
    if not verified or verified == number or slot_before_turn(tracker, "email") != email:
        return False
    typed = email_in(str(tracker.latest_message.get("text") or ""))
    return typed is None or normalise_email(typed) != email


class ActionAskEmail(Action):
    """The forms' question for the email: which email goes with the order when the one the
    conversation knew was dropped (it did not match a new order number, or its proof expired),
    else the usual question."""

    def name(self) -> str:
        return "action_ask_email"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if escalation.offered_this_turn(tracker) or refused_this_turn(tracker):
            return []
        if tracker.get_slot("order_number") and slot_before_turn(tracker, "email"):
            dispatcher.utter_message(response="utter_ask_email_for_order")
        else:
            dispatcher.utter_message(response="utter_ask_email")
        return []


def refused_this_turn(tracker: Tracker) -> bool:
    """The bot just said the order is not under the sender's address, which asks for the
    email already."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return False
        if event.get("event") == "bot":
            return (event.get("metadata") or {}).get("utter_action") == NOT_UNDER_SENDER
    return False


class ActionAskOrderNumber(Action):
    """The forms' question for the order number, unless a person was just offered instead."""

    def name(self) -> str:
        return "action_ask_order_number"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if not escalation.offered_this_turn(tracker):
            dispatcher.utter_message(response="utter_ask_order_number")
        return []


def proof_is_fresh(tracker: Tracker, tenant: Tenant, now: float | None = None) -> bool:
    """Whether the verified order was proved or used within the shop's quiet period.

    A `verified_order` without a time (a tracker from before verification expired) is stale."""
    at = tracker.get_slot(VERIFIED_AT)
    if not isinstance(at, (int, float)) or isinstance(at, bool):
        return False
    age = (time.time() if now is None else now) - at
    return 0 <= age <= tenant.verification_expiry_minutes * 60


def verified_now() -> list[EventType]:
    """Events that restart the quiet period: the order was just proved or used."""
    return [SlotSet(VERIFIED_AT, time.time())]


async def verified_order(tracker: Tracker,
                         before_turn: bool = False) -> tuple[Tenant, Order] | None:
    """The order the form verified (from the backend, or its copy of the last 30 s), or None
    when nothing was verified or the proof is older than the shop's quiet period.

    `before_turn`: as it stood before the latest message, whatever NLU extracted from it (the
    "2" that picks an item is not a new order number)."""
    slot = (lambda name: slot_before_turn(tracker, name)) if before_turn else tracker.get_slot
    number, email = slot("verified_order"), slot("email")
    if not number or not email or slot("order_number") != number or sender_unproven(tracker):
        return None
    tenant = await tenant_of(tracker)
    if not proof_is_fresh(tracker, tenant):
        return None
    order = await runtime().find_order(tenant, number, email)
    return (tenant, order) if order else None


def slot_before_turn(tracker: Tracker, name: str) -> Any:
    """The slot's value before the visitor's latest message (what NLU just extracted and the
    form is validating is not counted)."""
    events = tracker.events
    last_user = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=-1)
    for event in reversed(events[:max(last_user, 0)]):
        if event.get("event") == "slot" and event.get("name") == name:
            return event.get("value")
    return None


def stop_events() -> list[EventType]:
    """Reset what a finished or stopped flow leaves behind."""
    return [SlotSet("flow_stop_reason", None), SlotSet("requested_slot", None)]


def explain_stop(reason: str, dispatcher: CollectingDispatcher) -> list[EventType]:
    """Say what a form that ended early means for the visitor; returns slot events."""
    if reason == STOP_VERIFICATION_FAILED:
        dispatcher.utter_message(response="utter_verification_exhausted")
        return [SlotSet("handoff_offered", True)]
    if reason == STOP_PERSON_WANTED:
        return [FollowupAction(escalation.HANDOFF_ACTION)]
    if reason == STOP_NO_TENANT:
        dispatcher.utter_message(response="utter_handoff_failed")
    # not_eligible / backend_unavailable / verification_locked / unproven_sender: the
    # validator already explained.
    return []
