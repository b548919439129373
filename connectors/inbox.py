"""Visitor messages in: accepted, deduplicated, kept in order, recovered, answered by Rasa.

Every channel hands what it parsed to the inbox (connectors/channels/contract.py):
- `accept`: a provider message (SMS, WhatsApp, email). It is stored under its provider id (the
  unique key is the dedupe, also across gateway processes; Redis answers repeats before the
  database is asked) and the webhook is acknowledged at once, also over a rate limit (it is then
  stored to be answered when its turn comes: connectors/limits.py). Its answer runs in the
  background under a lease (connectors/leases.py): one conversation at a time in arrival order,
  across gateways; the answer is stored and handed to the outbox (connectors/outbox.py).
- `converse`: a message answered within the request (REST, widget): over a rate limit 429,
  else stored, one Rasa turn, the bot's messages returned (and stored once on their way).
- `record_status`: a provider's report on a message we sent, for the outbox's records.
- `sweep` (every few seconds, `run_sweeps`): renews this process's leases and answers provider
  messages nobody holds: a dead gateway's, retries that are due, deferred ones whose turn came.
So a message's path through the gateway is one pass: channel → inbox → Rasa → outbox.

What Rasa made of each visitor message (intent, confidence, the turn's outcome: core/
conversations.py `outcome_of`) is stored on its row without a round trip of its own: a provider
message's in the UPDATE that marks it handled, a REST or widget message's in the transaction
that stores our copy of the reply, after the answer went back.

When the bot cannot answer a provider message (Rasa timed out, unreachable, erred; or our own
storage failed), the message is not marked handled: it is given back and tried again after
RETRY_AFTER (10 s, 30 s, 1 min, 2 min). The fifth attempt that fails (about four minutes after
the first, a crash-looping message included: every claim counts) sends the apology instead and
marks it handled: a visitor on SMS hears from us within minutes, and an outage longer than that
is one the apology tells them about. A retry after a timeout may give Rasa the message twice
(it may have taken it in before we stopped waiting): a repeated turn is a smaller harm than a
lost one.

While a person owns a conversation (core/handoffs.py `human_owner`: a queued or assigned
handoff, in the database, so it holds across gateway processes) the visitor's messages still go
to Rasa (it records them; action_handoff paused the tracker, so it predicts nothing), but no bot
message goes out, not even the apology: whatever Rasa said is dropped with a warning, and the
agents' pages get a live event (`message.visitor`). Whether a person owns it is read before the
turn, so the turn that escalates still says the bot's announcement. After an agent resolved and
the visitor was asked for a rating, a rating as people write it ("4", "5 stars, thanks!", "I'd
give it a 4": core/handoffs.py `rating_in`) is theirs (`take_rating`): it is thanked in the
shop's words (utter_thanks_for_rating) without asking Rasa.

With billing on, every visitor message on every channel asks the conversation meter
(billing/conversations.py) before Rasa: a conversation that started past the shop's monthly
limit gets the polite refusal in the shop's words (utter_conversation_limit_reached, with the
shop's support email; ..._no_contact without one) instead of the bot, for each of its messages.
The visitor's message is stored as always and the refusal is stored as the bot's reply and
sent like one; Rasa never hears of it. A conversation a person owns is never refused.

A message that held a card number (masked on arrival: connectors/messages.py, core/cards.py)
gets the shop's utter_card_number_hidden before the bot's answer, once a message, whatever in
Rasa answers it (`_card_warned`): no call of its own on the turns that hold none.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from billing.conversations import ConversationMeter
from connectors import metrics
from connectors.agent_replies import agent_delivery
from connectors.errors import BotUnreachable, GatewayError
from connectors.leases import SWEEP_EVERY, Claimed, Conversation, Leases
from connectors.limits import Limits
from connectors.messages import InboundMessage, StatusUpdate
from connectors.outbound import Reply
from connectors.outbox import Outbox
from connectors.rasa_client import BotTurn
from connectors.rendering import pick_choice
from connectors.urls import request_origin
from core import cards, conversations, handoffs, live
from core.conversations import NOTHING_UNDERSTOOD, DuplicateMessage, Understood
from core.db import utcnow
from core.live import LiveEvent, Publisher
from core.tasks import TaskSet
from tenants import Tenant, UnknownTenant
from tenants.texts import OverrideCache

log = logging.getLogger(__name__)

SEEN_TTL = 7 * 24 * 3600  # providers retry for hours (SendGrid: 3 days); keep ids a week
# Said when the bot itself cannot answer (Rasa down after retries): the visitor is not ignored.
# The shop may reword it (utter_trouble_answering, admin API); this is the domain's text too.
APOLOGY_RESPONSE = "utter_trouble_answering"
APOLOGY = ("Sorry, I'm having trouble answering right now. Please write again in a few "
           "minutes, or reply 'agent' to reach someone from our team.")
# Media without text reaches the bot as this intent (bot/domain/media.yml answers it).
MEDIA_PAYLOAD = "/send_media"
# Seconds before the next try of a provider message whose answer failed, by failures so far;
# one more failure than there are waits gets the apology.
RETRY_AFTER: tuple[float, ...] = (10.0, 30.0, 60.0, 120.0)
# Said when a visitor's 1-5 answers the satisfaction question (shops may reword it).
THANKS_RESPONSE = "utter_thanks_for_rating"
THANKS = "Thank you for your feedback!"
# Said instead of the bot past the shop's monthly conversation limit (bot/domain/billing.yml;
# shops may reword both); these words when the shop's texts cannot be read.
LIMIT_RESPONSE = "utter_conversation_limit_reached"
LIMIT = "Sorry, we can't start a new chat right now. Please reach {shop} at {contact}."
LIMIT_NO_CONTACT_RESPONSE = "utter_conversation_limit_reached_no_contact"
LIMIT_NO_CONTACT = "Sorry, we can't start a new chat right now. Please try again later."
# Said once in a turn whose message held a card number the gateway masked (core/cards.py),
# before whatever answers it (`_card_warned`; bot/domain/smalltalk.yml, shops may reword it).
CARD_WARNING_RESPONSE = "utter_card_number_hidden"
CARD_WARNING = ("Just so you know: I've hidden the card number you sent. Please don't share "
                "card details in the chat, I never need them, and our team won't ask for them "
                "here.")

ResolveTenant = Callable[[str], Awaitable[Tenant]]


class Bot(Protocol):
    """What the inbox needs of Rasa (connectors/rasa_client.py): one turn."""

    async def turn(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        ...


class Inbox:
    def __init__(self, sessions: async_sessionmaker, rasa: Bot, outbox: Outbox,
                 redis: Redis | None = None, retry_wait: float = 0.5,
                 tenants: ResolveTenant | None = None, limits: Limits | None = None,
                 leases: Leases | None = None,
                 retry_after: Sequence[float] = RETRY_AFTER,
                 live: Publisher | None = None,
                 meter: ConversationMeter | None = None) -> None:
        self._sessions = sessions
        self._rasa = rasa
        self._outbox = outbox
        self._redis = redis
        self._retry_wait = retry_wait
        self._tenants = tenants
        self.limits = limits or Limits(redis)
        self.leases = leases or Leases(sessions)
        self._retry_after = tuple(retry_after)
        # Conversations this process is answering: True when more arrived meanwhile.
        self._draining: dict[Conversation, bool] = {}
        # One wake-up per conversation with a retry or a deferred message due soon.
        self._wakeups: dict[Conversation, asyncio.TimerHandle] = {}
        self._tasks = TaskSet()
        self._texts = OverrideCache(sessions, ttl=5.0)
        self._live = live  # agents' live events (core/live.py); None: not published
        self._meter = meter  # monthly conversation limits (billing); None: no limit

    # -- provider messages: acknowledged at once, answered in the background ---------------
    async def accept(self, inbound: InboundMessage) -> bool:
        """Store and schedule; False when this provider message id was seen before."""
        if not self._outbox.sends_for(inbound.provider):
            raise ValueError(f"no sender for provider {inbound.provider!r}")
        if inbound.message_id is None:
            raise ValueError("provider messages need their provider id for dedupe")
        seen_key = f"sb:seen:{inbound.tenant.id}:{inbound.channel}:{inbound.message_id}"
        if not await self._first_sighting(seen_key):
            self._log_duplicate(inbound)
            return False
        try:
            wait = await self.limits.reserve(inbound)
            message_pk = await self._store(inbound, "in", inbound.text, inbound.stored_payload(),
                                           message_id=inbound.message_id,
                                           answer_from=utcnow() + timedelta(seconds=wait))
        except DuplicateMessage:
            self._log_duplicate(inbound)
            return False
        except BaseException:
            if self._redis is not None:  # let the provider's retry through
                with contextlib.suppress(RedisError):
                    await self._redis.delete(seen_key)
            raise
        conversation = Conversation(inbound.tenant.id, inbound.sender_id)
        if self._live is not None:
            self._tasks.spawn(self._tell_agents(inbound, message_pk))
        if wait > 0:
            self._wake_later(conversation, wait, inbound.tenant)
        else:
            self._answer_conversation(conversation, inbound.tenant, request_origin.get())
        return True

    async def _first_sighting(self, seen_key: str) -> bool:
        """Redis answers repeats before the database is asked; without Redis, or when it
        fails, the database's unique key alone keeps each message once."""
        if self._redis is None:
            return True
        try:
            return bool(await self._redis.set(seen_key, 1, nx=True, ex=SEEN_TTL))
        except RedisError as exc:
            log.warning("dedupe falls back to the database", extra={"error": type(exc).__name__})
            return True

    async def record_status(self, tenant: Tenant, provider: str, channel: str,
                            update: StatusUpdate) -> None:
        await self._outbox.record_status(tenant, provider, channel, update)
        if self._live is None:
            return
        # Agents see their own replies' delivery; the bot's are not worth a live event.
        found = await agent_delivery(self._sessions, tenant.id, provider,
                                     update.provider_message_id)
        if found is not None:
            sender, message_pk = found
            await self._live.publish(LiveEvent(
                tenant_id=tenant.id, kind=live.DELIVERY, sender_id=sender,
                data={"message_pk": message_pk, "status": update.status}))

    def _answer_conversation(self, conversation: Conversation, tenant: Tenant | None,
                             origin: str | None) -> None:
        """Answer the conversation's messages that are free, oldest first, unless this process
        is at it already (then it is told to look again when done)."""
        if conversation in self._draining:
            self._draining[conversation] = True
            return
        self._draining[conversation] = False
        self._tasks.spawn(self._drain(conversation, tenant, origin))

    async def _drain(self, conversation: Conversation, tenant: Tenant | None,
                     origin: str | None) -> None:
        claimed: Claimed | None = None
        try:
            claimed = await self.leases.claim_next(conversation)
            while True:
                if claimed is None:
                    if not self._draining[conversation]:
                        return
                    self._draining[conversation] = False  # more arrived: look again
                    claimed = await self.leases.claim_next(conversation)
                    continue
                understood = await self._answer(claimed, tenant, origin)
                if understood is None:
                    claimed = None
                    return  # given back for a retry; the conversation waits for it
                claimed = await self.leases.finish_and_claim_next(
                    claimed.id, conversation,
                    understood.columns() if understood != NOTHING_UNDERSTOOD else None)
        except Exception:  # the lease runs out and a sweep tries again
            log.exception("conversation not answered", extra={"tenant_id": conversation.tenant_id})
            if claimed is not None:
                self.leases.forget(claimed.id)
        finally:
            del self._draining[conversation]

    async def _answer(self, claimed: Claimed, tenant: Tenant | None,
                      origin: str | None) -> Understood | None:
        """What the bot made of the message when it is handled (answered, or a permanent
        error recorded: then NOTHING_UNDERSTOOD); None when it was given back to be tried
        again."""
        if tenant is None or tenant.id != claimed.tenant_id:
            try:
                tenant = await self._tenant(claimed.tenant_id)
            except UnknownTenant:
                log.warning("message of an unknown shop not answered",
                            extra={"tenant_id": claimed.tenant_id, "message_pk": claimed.id})
                return NOTHING_UNDERSTOOD
        inbound = InboundMessage.from_stored(tenant, claimed.sender_id, claimed.text,
                                             claimed.message_id, claimed.payload)
        facts = {"tenant_id": tenant.id, "channel": inbound.channel,
                 "provider": inbound.provider, "message_pk": claimed.id,
                 "attempt": claimed.attempts}
        if not self._outbox.sends_for(inbound.provider):
            log.error("no sender for a stored message; not answered", extra=facts)
            return NOTHING_UNDERSTOOD
        if claimed.attempts > 1:
            if await self.leases.answer_went_out(claimed, reply_key(claimed.id)):
                # Its holder sent the answer and died before marking it handled.
                log.warning("message was answered before its holder died", extra=facts)
                return NOTHING_UNDERSTOOD
            log.warning("message answered again (a retry, or its gateway died)", extra=facts)
        last_try = claimed.attempts > len(self._retry_after)
        try:
            if await self._rated(inbound, claimed.id, origin):
                return NOTHING_UNDERSTOOD
            for_a_person = await self._human_owns(inbound)
            if await self._refused(inbound, for_a_person):
                await self._send_refusal(inbound, claimed.id, origin)
                return NOTHING_UNDERSTOOD
            # Never the apology where a person answers: they have the message anyway.
            replies, turns = await self._replies(inbound, apologise=last_try and not for_a_person,
                                                 for_a_person=for_a_person)
            understood = Understood.deciding([turn.understood() for turn in turns])
            # for_a_person: replies is empty, nothing stored, nothing sent; the agents were
            # told when the message was accepted (_tell_agents).
            await self._outbox.send(inbound.recipient(), replies,
                                    await self._store_replies(inbound, replies, claimed.id,
                                                              _actions_of(turns)),
                                    origin)
        except Exception as exc:
            if last_try:
                log.exception("message given up after its last try", extra=facts)
                return NOTHING_UNDERSTOOD
            wait = self._retry_after[claimed.attempts - 1]
            if isinstance(exc, GatewayError):
                log.warning("bot did not answer; trying again later",
                            extra={**facts, "error": type(exc).__name__, "in_s": wait})
            else:
                log.exception("channel turn failed; trying again later",
                              extra={**facts, "in_s": wait})
            await self.leases.release(claimed.id, utcnow() + timedelta(seconds=wait))
            self._wake_later(Conversation(claimed.tenant_id, claimed.sender_id), wait, tenant)
            return None
        log.info("channel turn", extra={
            **facts, "turns": len(replies),
            "ms": round((utcnow() - claimed.created_at).total_seconds() * 1000, 1)})
        return understood

    # -- a person owns the conversation; ratings ---------------------------------------------
    async def _human_owns(self, inbound: InboundMessage) -> bool:
        return await handoffs.human_owner(self._sessions, inbound.tenant.id,
                                          inbound.sender_id) is not None

    def _drop_bot_messages(self, inbound: InboundMessage, messages: Sequence[Any]) -> None:
        if messages:
            log.warning("bot messages dropped: a person owns the conversation",
                        extra={"tenant_id": inbound.tenant.id, "channel": inbound.channel,
                               "dropped": len(messages)})

    async def _tell_agents(self, inbound: InboundMessage, message_pk: int) -> None:
        """message.visitor as soon as a provider message is accepted, when a person owns the
        conversation: not after its turn, which waits behind the conversation's earlier
        messages and Rasa (bench/channels.py --agents: with 200 visitors, 20 of them writing
        every 2 s to agents, publishing after the turn made the event p50 48 s late)."""
        try:
            if await self._human_owns(inbound):
                await self._visitor_wrote(inbound, message_pk)
        except Exception:  # a live event is a notification; the message itself is stored
            log.exception("agents not told of a visitor's message",
                          extra={"tenant_id": inbound.tenant.id, "channel": inbound.channel})

    async def _visitor_wrote(self, inbound: InboundMessage, message_pk: int | None) -> None:
        """Tell the agents' pages (only for conversations a person owns: a small stream)."""
        await self._publish(inbound, live.VISITOR_MESSAGE,
                            {"channel": inbound.channel, "text": inbound.text,
                             "message_pk": message_pk})

    async def _publish(self, inbound: InboundMessage, kind: str, data: dict[str, Any]) -> None:
        if self._live is not None:
            await self._live.publish(LiveEvent(tenant_id=inbound.tenant.id, kind=kind,
                                               sender_id=inbound.sender_id, data=data))

    async def _rating(self, inbound: InboundMessage) -> int | None:
        """The visitor's answer to the satisfaction question, recorded; None if it is not one."""
        if inbound.questions or handoffs.rating_in(inbound.text) is None:
            return None  # the common case costs no query
        rating = await handoffs.take_rating(self._sessions, inbound.tenant.id,
                                            inbound.sender_id, inbound.text)
        if rating is not None:
            log.info("satisfaction rating recorded",
                     extra={"tenant_id": inbound.tenant.id, "channel": inbound.channel})
            await self._publish(inbound, handoffs.SATISFACTION, {"rating": rating})
        return rating

    async def _thanks(self, inbound: InboundMessage) -> dict[str, Any]:
        return dict(await self._texts.say(inbound.tenant.id, THANKS_RESPONSE, inbound.channel,
                                          THANKS))

    async def _rated(self, inbound: InboundMessage, message_pk: int,
                     origin: str | None) -> bool:
        """A provider message that rated the conversation: thanked, not given to Rasa."""
        if await self._rating(inbound) is None:
            return False
        replies = [Reply(question=None, messages=(await self._thanks(inbound),))]
        await self._outbox.send(inbound.recipient(), replies,
                                await self._store_replies(inbound, replies, message_pk, []),
                                origin)
        return True

    # -- past the monthly conversation limit (billing) ---------------------------------------
    async def _refused(self, inbound: InboundMessage, for_a_person: bool) -> bool:
        """Whether the message's conversation is past the shop's monthly limit (it is
        counted here when it starts; a person's conversation is counted, never refused)."""
        if self._meter is None:
            return False
        admission = await self._meter.admit(inbound.tenant.id, inbound.sender_id,
                                            inbound.channel, person_owns=for_a_person)
        return admission.refused

    async def _refusal(self, inbound: InboundMessage) -> dict[str, Any]:
        """The polite refusal in the shop's words, with its contact when it has one."""
        shop, contact = inbound.tenant.name, inbound.tenant.support_email
        if contact:
            return dict(await self._texts.say(
                inbound.tenant.id, LIMIT_RESPONSE, inbound.channel,
                LIMIT.format(shop=shop, contact=contact), {"shop": shop, "contact": contact}))
        return dict(await self._texts.say(inbound.tenant.id, LIMIT_NO_CONTACT_RESPONSE,
                                          inbound.channel, LIMIT_NO_CONTACT, {"shop": shop}))

    async def _send_refusal(self, inbound: InboundMessage, message_pk: int,
                            origin: str | None) -> None:
        """A provider message past the limit: the refusal stored as the bot's reply and sent."""
        replies = [Reply(question=None, messages=(await self._refusal(inbound),))]
        await self._outbox.send(inbound.recipient(), replies,
                                await self._store_replies(inbound, replies, message_pk, []),
                                origin)

    async def _converse_refused(self, inbound: InboundMessage) -> list[dict[str, Any]] | None:
        """A REST or widget message past the limit: stored, answered with the refusal."""
        try:
            message_pk = await self._store_inbound(inbound, inbound.client_metadata or None)
        except DuplicateMessage:
            self._log_duplicate(inbound)
            return None
        refusal = [await self._refusal(inbound)]
        self._tasks.spawn(self._keep_copy(inbound, BotTurn(messages=refusal), utcnow(),
                                          message_pk, NOTHING_UNDERSTOOD))
        return refusal

    async def _tenant(self, tenant_id: str) -> Tenant:
        if self._tenants is None:
            raise UnknownTenant(tenant_id)
        return await self._tenants(tenant_id)

    def _wake_later(self, conversation: Conversation, seconds: float,
                    tenant: Tenant | None) -> None:
        """Look at the conversation again once its next message is due, when that is before
        the next sweep would (a sweep finds it anyway, also in another gateway)."""
        if seconds >= SWEEP_EVERY or conversation in self._wakeups:
            return

        def wake() -> None:
            del self._wakeups[conversation]
            self._answer_conversation(conversation, tenant, None)

        self._wakeups[conversation] = asyncio.get_running_loop().call_later(
            seconds + 0.05, wake)

    async def sweep(self, first: bool = False) -> int:
        """Renew our leases; answer the conversations with messages nobody holds (`first`:
        also those stored before leases existed). Returns how many were taken on."""
        await self.leases.renew()
        found = await self.leases.free_conversations(skip=list(self._draining), unleased=first)
        taken_over = sum(taken for _, taken in found)
        if taken_over:
            log.warning("leases taken over", extra={"conversations": taken_over})
            metrics.LEASE_TAKEOVERS.inc(taken_over)
        for conversation, _ in found:
            self._answer_conversation(conversation, None, None)
        return len(found)

    async def run_sweeps(self, every: float = SWEEP_EVERY) -> None:
        """Sweep now (what a crash left) and every `every` seconds until cancelled."""
        first = True
        while True:
            try:
                await self.sweep(first)
                first = False
            except Exception:  # the database may be away for a moment; the next one tries
                log.exception("lease sweep failed")
            await asyncio.sleep(every)

    async def _replies(self, inbound: InboundMessage, apologise: bool,
                       for_a_person: bool = False) -> tuple[list[Reply], list[BotTurn]]:
        """The bot's replies and its turns (one per question); raises GatewayError when Rasa
        cannot answer, unless `apologise` (the last try), when the apology answers instead.
        `for_a_person`: a person owns the conversation; whatever Rasa says is dropped."""
        texts = inbound.turns()
        if len(texts) == 1 and not texts[0].strip():
            texts = (MEDIA_PAYLOAD,) if inbound.media else ()
        replies: list[Reply] = []
        turns: list[BotTurn] = []
        warned = False
        for text in texts:
            written = text
            if len(texts) == 1 and not for_a_person:
                text = await self._chosen(inbound, text) or text
            try:
                turn: BotTurn = await self._with_retries(self._rasa_turn, inbound, text)
            except GatewayError:
                if not apologise:
                    raise
                apology = await self._texts.say(inbound.tenant.id, APOLOGY_RESPONSE,
                                                inbound.channel, APOLOGY)
                turn = BotTurn(messages=[apology])
            if not (warned or for_a_person):
                # Once a message, on the first of its questions that shows a card number.
                unwarned = turn
                turn = await self._card_warned(inbound, written, turn)
                warned = turn is not unwarned
            turns.append(turn)
            if for_a_person:
                self._drop_bot_messages(inbound, turn.messages)
            elif turn.messages:
                replies.append(Reply(question=text if len(texts) > 1 else None,
                                     messages=tuple(turn.messages)))
        return replies, turns

    async def _chosen(self, inbound: InboundMessage, text: str) -> str | None:
        """The payload of a numbered choice the bot offered last, if the visitor picked one."""
        payload = await conversations.last_bot_payload(self._sessions, inbound.tenant.id,
                                                       inbound.sender_id)
        messages = (payload or {}).get("messages") or []
        offered = [m for m in messages if m.get("buttons")][-1:]  # numbered last, read back
        return pick_choice(text, [b for m in offered for b in m["buttons"]])

    async def _with_retries(self, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        # Only when the message never reached Rasa: after a timeout Rasa may still take it in,
        # and sending it again would put it in the conversation twice.
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(3), reraise=True,
            wait=wait_exponential_jitter(multiplier=self._retry_wait, max=8),
            retry=retry_if_exception(lambda exc: isinstance(exc, BotUnreachable)),
        ):
            with attempt:
                return await call(*args)

    async def _store_replies(self, inbound: InboundMessage, replies: list[Reply],
                             answering: int, actions: list[str]) -> int | None:
        """Our copy of the bot's reply to stored message `answering`, keyed by it (a later
        holder of its lease can tell whether it went out: Leases.answer_went_out), with the
        actions Rasa ran for it (transcripts show them)."""
        if not replies:
            return None
        messages = [m for r in replies for m in r.messages]
        payload: dict[str, Any] = {"messages": messages, "actions": actions}
        if any(r.question for r in replies):
            payload["questions"] = [r.question for r in replies]
        try:
            return await self._store(inbound, "out", _text_of(messages), payload,
                                     message_id=reply_key(answering))
        except Exception:  # the visitor's answer matters more than our copy of it
            log.exception("bot reply not stored; sending it anyway",
                          extra={"tenant_id": inbound.tenant.id, "channel": inbound.channel})
            return None

    # -- messages answered within the request (REST, widget) --------------------------------
    async def converse(self, inbound: InboundMessage) -> list[dict[str, Any]] | None:
        """The bot's messages, or None when this message id was already handled.

        A message with an id is stored before Rasa sees it: the unique id is the dedupe. A
        message without one (plain REST) is stored while Rasa works on it; either way it is
        stored before we answer, also when Rasa fails. A visitor who leaves mid-turn (closed
        tab, dropped request) does not cancel it: its answer is stored and shows up in the
        conversation's history. Over a rate limit: RateLimited (429), nothing stored.
        """
        await self.limits.admit(inbound)
        return await asyncio.shield(self._tasks.spawn(self._converse(inbound)))

    async def _converse(self, inbound: InboundMessage) -> list[dict[str, Any]] | None:
        started = time.perf_counter()
        if handoffs.rating_in(inbound.text) is not None:
            rated = await self._converse_rating(inbound)
            if rated is not None:
                return rated or None
        if await self._human_owns(inbound):
            await self._refused(inbound, for_a_person=True)  # counted, never refused
            return await self._converse_for_a_person(inbound)
        if await self._refused(inbound, for_a_person=False):
            return await self._converse_refused(inbound)
        stored = self._store_inbound(inbound, inbound.client_metadata or None)
        if inbound.message_id is not None:
            try:
                message_pk = await stored
            except DuplicateMessage:
                self._log_duplicate(inbound)
                return None
            turn = await self._rasa_turn(inbound, inbound.text)
        else:
            stored_result, turn_result = await asyncio.gather(
                stored, self._rasa_turn(inbound, inbound.text), return_exceptions=True)
            if isinstance(stored_result, BaseException):
                raise stored_result
            if isinstance(turn_result, BaseException):
                raise turn_result
            message_pk, turn = stored_result, turn_result
        turn = await self._card_warned(inbound, inbound.text, turn)
        replies = turn.messages
        understood = turn.understood()
        if replies or understood != NOTHING_UNDERSTOOD:
            # Our copy of what Rasa's tracker holds, and what it made of the message: stored
            # once the answer is on its way instead of delaying it, keeping the time it was
            # said. drain() waits on shutdown.
            self._tasks.spawn(self._keep_copy(inbound, turn, utcnow(), message_pk, understood))
        log.info("turn", extra={"tenant_id": inbound.tenant.id, "channel": inbound.channel,
                                "replies": len(replies),
                                "ms": round((time.perf_counter() - started) * 1000, 1)})
        return replies

    async def _converse_rating(self, inbound: InboundMessage) -> list[dict[str, Any]] | None:
        """The thanks when the message rated the conversation ([] when it was a repeat of one
        handled before); None when it is not a rating (the bot answers it)."""
        # A resend of a rating finds it taken (None here) and is dropped as a duplicate below.
        if await self._rating(inbound) is None:
            return None
        try:
            message_pk = await self._store_inbound(inbound, inbound.client_metadata or None)
        except DuplicateMessage:
            self._log_duplicate(inbound)
            return []
        thanks = [await self._thanks(inbound)]
        self._tasks.spawn(self._keep_copy(inbound, BotTurn(messages=thanks), utcnow(),
                                          message_pk, NOTHING_UNDERSTOOD))
        return thanks

    async def _converse_for_a_person(self, inbound: InboundMessage) -> list[dict[str, Any]] | None:
        """A person owns the conversation: stored, recorded by Rasa, no bot message."""
        try:
            message_pk = await self._store_inbound(inbound, inbound.client_metadata or None)
        except DuplicateMessage:
            self._log_duplicate(inbound)
            return None
        await self._visitor_wrote(inbound, message_pk)
        try:
            turn = await self._rasa_turn(inbound, inbound.text)
        except GatewayError as exc:  # the agent has the message; the visitor hears nothing
            log.warning("bot did not record a message a person owns",
                        extra={"tenant_id": inbound.tenant.id, "channel": inbound.channel,
                               "error": type(exc).__name__})
            return []
        self._drop_bot_messages(inbound, turn.messages)
        understood = turn.understood()
        if understood != NOTHING_UNDERSTOOD:
            self._tasks.spawn(self._keep_copy(inbound, BotTurn(messages=[]), utcnow(),
                                              message_pk, understood))
        return []

    async def _keep_copy(self, inbound: InboundMessage, turn: BotTurn, said_at: datetime,
                         message_pk: int, understood: Understood) -> None:
        reply = None
        if turn.messages:
            reply = {"tenant_id": inbound.tenant.id, "sender_id": inbound.sender_id,
                     "channel": inbound.channel, "direction": "out",
                     "text": _text_of(turn.messages), "created_at": said_at,
                     "payload": {"messages": turn.messages, "actions": list(turn.actions)}}
        try:
            await conversations.record_turn(self._sessions, message_pk, understood, reply)
        except Exception:
            log.exception("bot reply not stored", extra={"tenant_id": inbound.tenant.id,
                                                          "channel": inbound.channel})

    # -- shared ---------------------------------------------------------------------------
    async def _rasa_turn(self, inbound: InboundMessage, text: str) -> BotTurn:
        return await self._rasa.turn(inbound.sender_id, text, inbound.rasa_metadata())

    async def _card_warned(self, inbound: InboundMessage, written: str, turn: BotTurn) -> BotTurn:
        """`turn` with the card warning first when what the visitor wrote showed a card number
        the gateway masked; `turn` itself otherwise. Said here, whatever in Rasa answers the
        message (a rule's template, a form, a custom action), with no call to the action server
        on the turns that hold no card. A turn with nothing to say (a person owns it) says no
        warning either."""
        if not turn.messages or not cards.holds_card(written):
            return turn
        warning = await self._texts.say(inbound.tenant.id, CARD_WARNING_RESPONSE,
                                        inbound.channel, CARD_WARNING)
        return dataclasses.replace(turn, messages=[dict(warning), *turn.messages])

    async def _store_inbound(self, inbound: InboundMessage, payload: dict[str, Any] | None) -> int:
        """Raises DuplicateMessage when its provider id was stored before."""
        return await self._store(inbound, "in", inbound.text, payload,
                                 message_id=inbound.message_id)

    async def _store(self, inbound: InboundMessage, direction: str, text: str,
                     payload: dict[str, Any] | None, message_id: str | None = None,
                     at: datetime | None = None, answer_from: datetime | None = None) -> int:
        return await conversations.record_message(
            self._sessions, tenant_id=inbound.tenant.id, sender_id=inbound.sender_id,
            channel=inbound.channel, direction=direction, text=text, message_id=message_id,
            payload=payload, at=at, answer_from=answer_from)

    def _log_duplicate(self, inbound: InboundMessage) -> None:
        log.info("duplicate message dropped", extra={
            "tenant_id": inbound.tenant.id, "channel": inbound.channel,
            "provider": inbound.provider, "message_id": inbound.message_id})

    @property
    def busy(self) -> bool:
        """Turns in flight or retries waiting in this process."""
        return bool(len(self._tasks) or self._wakeups)

    async def drain(self, timeout: float = 30.0) -> None:
        """Let turns and replies in flight finish (server shutdown); retries that were due
        later are left to the sweeps of whichever gateway runs then."""
        for wakeup in self._wakeups.values():
            wakeup.cancel()
        self._wakeups.clear()
        await self._tasks.drain(timeout)


def reply_key(message_pk: int) -> str:
    """The message id of our copy of the bot's reply to stored message `message_pk`."""
    return f"reply:{message_pk}"


def _actions_of(turns: Sequence[BotTurn]) -> list[str]:
    return [action for turn in turns for action in turn.actions]


def _text_of(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["text"] for m in messages if m.get("text"))
