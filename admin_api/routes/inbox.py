"""The agent inbox: claim a waiting conversation, reply through the visitor's channel, note,
transfer, resolve; who can take conversations; the live stream (agents and owners).

A conversation is addressed by its opaque id (admin_api/routes/conversations.py); its open
handoff (core/handoffs.py) is what these routes change, always by compare-and-set, so two
agents acting at once are decided by the database: one claim wins, the other is a 409 that
says who has it (`{"detail", "assignee": {"id", "name"}}`).

Who acts (`Agent`): a person (their user id, their name or email) or an agent API key
("key:<prefix>", the key's name). On an assigned conversation only its assignee or an owner
replies, transfers or resolves. Replying to a queued one claims it first (the agent pressed
"reply": that is taking it; if someone was faster, 409 with who).

A reply is recorded (an outbound message with payload {"agent"}), handed to the gateway's
outbox (admin_api/gateway.py; the row is removed again when the gateway cannot take it, 503,
so the transcript never shows a reply the visitor did not get), and appended to Rasa's
tracker as a bot utterance (admin_api/rasa.py) so the bot resumes with the context.
Resolving hands the conversation back: Rasa resumes, and the visitor is asked for a 1-5 rating
on their channel (`utter_ask_satisfaction` in the shop's words) by the bot (author null).
Each change publishes its live event (admin_api/live.py) and is audited (without texts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints
from sqlalchemy import delete, select

from admin_api import live, people
from admin_api.api import API, Call, Model, Page
from admin_api.audit import record
from admin_api.auth import authenticate
from admin_api.errors import ApiError, Conflict, NotFound, Unauthorized, Unavailable, Unprocessable
from admin_api.gateway import GatewayClient, GatewayRefused, GatewayUnavailable
from admin_api.nlg import texts_cache
from admin_api.people import members
from admin_api.principal import AGENT, OWNER
from admin_api.rasa import RasaTracker, RasaUnavailable, agent_said, resumed
from admin_api.routes.conversations import (
    AgentOut,
    HandoffOut,
    NoteOut,
    handoff_out,
    note_out,
    sender_of,
)
from core import conversations, handoffs
from core.conversations import HandoffRow, MessageRow
from core.db import utcnow
from core.handoffs import Agent
from core.live import AGENT_MESSAGE, NOTE, LiveEvent
from core.sender_ids import NotTenantScoped, SenderId
from tenants.api_keys import ApiKeyRow, list_keys
from tenants.texts import UnknownResponse, domain_texts, render

log = logging.getLogger(__name__)
AGENTS = frozenset({OWNER, AGENT})
RATING_RESPONSE = "utter_ask_satisfaction"
RATING_DEFAULT: dict[str, Any] = {
    "text": "How would you rate the help you got, from 1 (poor) to 5 (great)?",
    "buttons": [{"title": str(n), "payload": str(n)} for n in range(1, 6)]}

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4096)]


class ReplyIn(Model):
    text: Text = Field(description="what the visitor reads, on their own channel")
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=100)] | None = Field(
        None, description="API keys only: the name the visitor sees beside the reply (a helpdesk "
                          "bridge names the person whose words it relays); default: the "
                          "shop's name, never the key's label. A person is always shown by "
                          "their own name (the shop's when they have none, never their "
                          "email).")


class NoteIn(Model):
    text: Text = Field(description="for the shop's people only; never sent")


class TransferIn(Model):
    user_id: str = Field(min_length=1, max_length=64,
                         description="a person's user id (agent or owner of this shop), or "
                                     "key:<prefix> of one of its agent API keys (GET /agents)")


class AgentMessageOut(Model):
    id: int
    text: str
    at: datetime
    agent: AgentOut


class ReplyOut(Model):
    message: AgentMessageOut


class AgentListed(Model):
    id: str = Field(description="what POST /conversations/{id}/transfer takes as user_id")
    name: str
    kind: Literal["person", "key"]
    role: Literal["owner", "agent"]


# -- who, and which handoff -------------------------------------------------------------------
async def agent_of(call: Call[Any, Any]) -> Agent:
    principal = call.principal
    if principal.key_prefix is not None:
        async with call.ctx.sessions() as session:
            name = await session.scalar(select(ApiKeyRow.name).where(
                ApiKeyRow.tenant_id == call.shop, ApiKeyRow.prefix == principal.key_prefix))
        return Agent(f"key:{principal.key_prefix}", name or f"key {principal.key_prefix}")
    admin_session = getattr(call.request.ctx, "admin_session", None)
    if principal.user_id is not None and admin_session is not None:
        user = admin_session.user
        return Agent(principal.user_id, user.name or user.email)
    return Agent(principal.actor, principal.actor)


async def shown_name(call: Call[ReplyIn, None], agent: Agent) -> str:
    """Whom the visitor reads a reply from: a person by their name, a person who never gave
    one as the shop; an API key (a helpdesk bridge, a script) by the name its call gives, else
    as the shop. A key's label is the owner's note of what it is for ("development agent
    (devtools.bootstrap)", "zendesk bridge #2"), and a person's email (the inbox's name for
    someone without a name: `agent_of`) is the shop's own business: neither is for visitors."""
    if agent.id.startswith("key:"):
        return call.body.name or await people.shop_name(call.ctx.sessions, call.shop)
    admin_session = getattr(call.request.ctx, "admin_session", None)
    own = admin_session.user.name if admin_session is not None else None
    return own or await people.shop_name(call.ctx.sessions, call.shop)


async def open_handoff(call: Call[Any, Any]) -> tuple[str, HandoffRow]:
    """The conversation's sender id and open handoff; 404 for another shop's id or one with
    no messages, 409 when the bot has the conversation (no person asked for, or handed back)."""
    sender_id = sender_of(call.ctx.settings.conversation_id_key, call.shop,
                          call.path["conversation_id"])
    row = await handoffs.human_owner(call.ctx.sessions, call.shop, sender_id)
    if row is None:
        async with call.ctx.sessions() as session:
            known = await session.scalar(select(MessageRow.id).where(
                MessageRow.tenant_id == call.shop, MessageRow.sender_id == sender_id).limit(1))
        if known is None:
            raise NotFound("no such conversation in your shop")
        raise Conflict("this conversation has no open handoff: the bot has it")
    return sender_id, row


def taken(assignee: Agent, detail: str | None = None) -> Conflict:
    return Conflict(detail or f"{assignee.name} has this conversation",
                    extra={"assignee": {"id": assignee.id, "name": assignee.name}})


def refused(exc: handoffs.HandoffError) -> ApiError:
    if isinstance(exc, handoffs.AlreadyTaken):
        return taken(exc.assignee)
    if isinstance(exc, handoffs.NoSuchHandoff):
        return NotFound(str(exc))
    return Conflict(str(exc))


async def changed(change: Awaitable[HandoffRow]) -> HandoffRow:
    """A compare-and-set of core/handoffs.py; its refusal answered as the API's 409 or 404."""
    try:
        return await change
    except handoffs.HandoffError as exc:
        raise refused(exc) from None


def may_act(call: Call[Any, Any], agent: Agent, row: HandoffRow, doing: str) -> None:
    """On an assigned conversation only its assignee or an owner acts; 409 with who."""
    if row.status != handoffs.ASSIGNED or row.assignee_id == agent.id \
            or call.principal.role == OWNER:
        return
    assignee = Agent(row.assignee_id or "", row.assignee_name or "another agent")
    raise taken(assignee, f"{assignee.name} has this conversation; only they or an owner "
                          f"can {doing} it")


async def publish(call: Call[Any, Any], kind: str, sender_id: str, **data: Any) -> None:
    await live.hub_of(call.request.app).publish(
        LiveEvent(tenant_id=call.shop, kind=kind, sender_id=sender_id, data=data))


def channel_of(sender_id: str, row: HandoffRow) -> str:
    try:
        return SenderId.parse(sender_id).channel
    except NotTenantScoped:
        return row.channel


def gateway(call: Call[Any, Any]) -> GatewayClient:
    client: GatewayClient = call.ctx.gateway
    return client


def rasa(call: Call[Any, Any]) -> RasaTracker:
    tracker: RasaTracker = call.ctx.rasa
    return tracker


async def append_to_tracker(call: Call[Any, Any], sender_id: str,
                            events: list[dict[str, Any]]) -> None:
    """Context for the bot, not the record: a failure is logged, not the caller's."""
    try:
        await rasa(call).append(sender_id, events)
    except RasaUnavailable as exc:
        log.warning("Rasa's tracker not updated", extra={"error": str(exc),
                                                         "events": len(events)})


async def deliver(call: Call[Any, Any], sender_id: str, row: HandoffRow, message: dict[str, Any],
                  payload: dict[str, Any], author: Agent | None) -> int:
    """Record an outbound message and hand it to the gateway; the row is removed again when
    the gateway cannot take it (NotFound / Conflict / Unavailable)."""
    pk = await conversations.record_message(
        call.ctx.sessions, tenant_id=call.shop, sender_id=sender_id,
        channel=channel_of(sender_id, row), direction="out", text=message.get("text"),
        payload=payload)
    try:
        await gateway(call).deliver(
            tenant_id=call.shop, sender_id=sender_id, message_pk=pk, messages=[message],
            author={"id": author.id, "name": author.name} if author else None)
    except (GatewayUnavailable, GatewayRefused) as exc:
        async with call.ctx.sessions() as session:
            await session.execute(delete(MessageRow).where(MessageRow.id == pk))
            await session.commit()
        if isinstance(exc, GatewayUnavailable):
            raise Unavailable("the message could not be handed to the gateway; it was not "
                              "sent: try again") from None
        if exc.status == 404:
            raise NotFound(str(exc)) from None
        raise Conflict(f"the gateway did not send it: {exc}") from None
    return pk


# -- routes ------------------------------------------------------------------------------------
@API.route("POST", "/conversations/{conversation_id}/claim", roles=AGENTS,
           response=HandoffOut, summary="Take a waiting conversation", tag="inbox",
           errors=(409,))
async def claim_conversation(call: Call[None, None]) -> HandoffOut:
    """Queued → assigned to the caller. Two agents at once: one 200, the other 409 with
    `assignee` (who has it). Claiming what one already holds is a 200 with no change."""
    sender_id, row = await open_handoff(call)
    agent = await agent_of(call)
    already = row.status == handoffs.ASSIGNED and row.assignee_id == agent.id
    claimed = await changed(handoffs.claim(call.ctx.sessions, call.shop, row.id, agent))
    if not already:
        await publish(call, handoffs.CLAIMED, sender_id, handoff_id=row.id,
                      assignee={"id": agent.id, "name": agent.name})
        await record(call, "conversation.claim", target=call.path["conversation_id"],
                     after={"handoff_id": row.id, "assignee": agent.id})
    return handoff_out(claimed)


@API.route("POST", "/conversations/{conversation_id}/messages", roles=AGENTS, body=ReplyIn,
           response=ReplyOut, status=202, summary="Reply to the visitor on their channel",
           tag="inbox", errors=(409, 503))
async def reply_to_visitor(call: Call[ReplyIn, None]) -> ReplyOut:
    """Delivered by the gateway through the visitor's own channel. A queued conversation is
    claimed by replying (409 with `assignee` when someone else was faster); an assigned one
    only by its assignee or an owner. 503: the gateway could not take it (nothing sent)."""
    sender_id, row = await open_handoff(call)
    agent = await agent_of(call)
    if row.status == handoffs.QUEUED:
        row = await changed(handoffs.claim(call.ctx.sessions, call.shop, row.id, agent))
        await publish(call, handoffs.CLAIMED, sender_id, handoff_id=row.id,
                      assignee={"id": agent.id, "name": agent.name})
    may_act(call, agent, row, "reply in")
    text = call.body.text
    by = {"id": agent.id, "name": await shown_name(call, agent)}
    pk = await deliver(call, sender_id, row, {"text": text},
                       {"agent": by, "messages": [{"text": text}], "handoff_id": row.id},
                       Agent(agent.id, by["name"]))
    await handoffs.agent_replied(call.ctx.sessions, row.id)
    await append_to_tracker(call, sender_id, [agent_said(text, by["name"])])
    at = utcnow()
    message = AgentMessageOut(id=pk, text=text, at=at, agent=AgentOut(**by))
    await publish(call, AGENT_MESSAGE, sender_id, handoff_id=row.id,
                  message=message.model_dump(mode="json"))
    await record(call, "conversation.reply", target=call.path["conversation_id"],
                 after={"handoff_id": row.id, "message_id": pk})
    return ReplyOut(message=message)


@API.route("POST", "/conversations/{conversation_id}/notes", roles=AGENTS, body=NoteIn,
           response=NoteOut, status=201, summary="Add an internal note", tag="inbox")
async def add_note(call: Call[NoteIn, None]) -> NoteOut:
    """For the shop's people only: shown in the transcript, never sent to the visitor."""
    sender_id = sender_of(call.ctx.settings.conversation_id_key, call.shop,
                          call.path["conversation_id"])
    latest = (await conversations.latest_handoffs(call.ctx.sessions, call.shop, [sender_id])
              ).get(sender_id)
    if latest is None and not await conversations.recent_messages(
            call.ctx.sessions, call.shop, sender_id, limit=1):
        raise NotFound("no such conversation in your shop")
    agent = await agent_of(call)
    note = await handoffs.add_note(call.ctx.sessions, call.shop, sender_id,
                                   latest.id if latest else None, agent, call.body.text)
    out = note_out(note)
    await publish(call, NOTE, sender_id, note=out.model_dump(mode="json"))
    await record(call, "conversation.note", target=call.path["conversation_id"],
                 after={"note_id": note.id})
    return out


@API.route("POST", "/conversations/{conversation_id}/transfer", roles=AGENTS, body=TransferIn,
           response=HandoffOut, summary="Give a conversation to another agent", tag="inbox",
           errors=(409,))
async def transfer_conversation(call: Call[TransferIn, None]) -> HandoffOut:
    """To a person with the agent or owner role in this shop, or one of its agent API keys
    (422 for anyone else). An assigned conversation: by its assignee or an owner."""
    sender_id, row = await open_handoff(call)
    agent = await agent_of(call)
    may_act(call, agent, row, "transfer")
    target = await takes_conversations(call, call.body.user_id)
    if target is None:
        raise Unprocessable("user_id is not an agent or owner of this shop, nor one of its "
                            "agent keys (GET /agents lists who can take conversations)")
    moved = await changed(handoffs.transfer(call.ctx.sessions, call.shop, row.id, agent, target))
    await publish(call, handoffs.TRANSFERRED, sender_id, handoff_id=row.id,
                  assignee={"id": target.id, "name": target.name}, previous=row.assignee_id)
    await record(call, "conversation.transfer", target=call.path["conversation_id"],
                 before={"assignee": row.assignee_id}, after={"assignee": target.id})
    return handoff_out(moved)


@API.route("POST", "/conversations/{conversation_id}/resolve", roles=AGENTS,
           response=HandoffOut, summary="Hand a conversation back to the bot", tag="inbox",
           errors=(409,))
async def resolve_conversation(call: Call[None, None]) -> HandoffOut:
    """The bot resumes (Rasa's tracker) and asks the visitor for a 1-5 rating on their
    channel. An assigned conversation: by its assignee or an owner."""
    sender_id, row = await open_handoff(call)
    agent = await agent_of(call)
    may_act(call, agent, row, "resolve")
    done = await changed(handoffs.resolve(call.ctx.sessions, call.shop, row.id, agent))
    await publish(call, handoffs.HANDOFF_RESOLVED, sender_id, handoff_id=row.id,
                  resolved_by={"id": agent.id, "name": agent.name})
    await record(call, "conversation.resolve", target=call.path["conversation_id"],
                 after={"handoff_id": row.id})
    events = [resumed()]
    question = await rating_question(call, channel_of(sender_id, done))
    try:
        await deliver(call, sender_id, done, question,
                      {"messages": [question], "responses": [RATING_RESPONSE],
                       "handoff_id": done.id}, None)
    except ApiError as exc:
        log.warning("satisfaction question not sent", extra={"status": exc.status})
    else:
        await handoffs.rating_asked(call.ctx.sessions, done.id)
        events.append({**agent_said(str(question.get("text") or ""), "switchboard"),
                       "metadata": {"utter_action": RATING_RESPONSE}})
    # ConversationPaused stopped Rasa right after action_handoff, before its action_listen:
    # without one the visitor's next message follows no listen, no rule matches it and the
    # policies fall back (seen through the real stack: "where is my order?" got the fallback).
    events.append({"event": "action", "name": "action_listen", "timestamp": time.time()})
    await append_to_tracker(call, sender_id, events)
    return handoff_out(await handoffs.get_handoff(call.ctx.sessions, call.shop, done.id))


async def rating_question(call: Call[Any, Any], channel: str) -> dict[str, Any]:
    """`utter_ask_satisfaction` in the shop's words for the channel; the built-in question
    when the domain has no such response (or the texts cannot be read)."""
    try:
        variants = await texts_cache(call.ctx).variants(call.shop, RATING_RESPONSE,
                                                        domain_texts())
        message = render(variants, channel, {}, {})
    except UnknownResponse:
        message = None
    return dict(message) if message else dict(RATING_DEFAULT)


# -- who can take conversations ----------------------------------------------------------------
async def agents_of(call: Call[Any, Any]) -> list[AgentListed]:
    people = [AgentListed.model_validate({"id": m.user_id, "name": m.name or m.email,
                                          "kind": "person", "role": m.role})
              for m in await members(call.ctx.sessions, call.shop) if m.role in AGENTS]
    keys = [AgentListed(id=f"key:{k.prefix}", name=k.name, kind="key", role="agent")
            for k in await list_keys(call.ctx.sessions, call.shop)
            if k.active and k.scope == AGENT]
    return people + keys


async def takes_conversations(call: Call[Any, Any], user_id: str) -> Agent | None:
    found = next((a for a in await agents_of(call) if a.id == user_id), None)
    return Agent(found.id, found.name) if found else None


@API.route("GET", "/agents", roles=AGENTS, response=Page[AgentListed],
           summary="List who can take conversations", tag="inbox")
async def list_agents(call: Call[None, None]) -> Page[AgentListed]:
    """People with the agent or owner role in the shop, and its agent API keys (as
    key:<prefix>): whom a conversation can be transferred to."""
    found = await agents_of(call)
    return Page[AgentListed](items=found, total=len(found), page=1,
                             page_size=max(len(found), 1))


# -- the live stream ---------------------------------------------------------------------------
@API.route("GET", "/events", roles=AGENTS, stream=True, tag="inbox",
           summary="Follow the shop's conversations live (server-sent events)")
async def follow_events(call: Call[None, None]) -> None:
    """text/event-stream: `event: <kind>` and `data: {json}` per event of the caller's shop
    (handoff.requested/claimed/transferred/resolved, satisfaction.given, message.visitor,
    message.agent, message.delivery, note.added), with `conversation_id` and a masked visitor,
    never a phone number or email; a comment line every 15 s; the stream ends after 30 min
    or when the caller's credentials stop being good, and the browser reconnects."""
    request = call.request

    async def still_allowed() -> bool:
        try:
            principal = await authenticate(request)
        except Unauthorized:
            return False
        return principal.tenant_id == call.shop and principal.may(AGENTS)

    await live.stream(request, call.shop, still_allowed)
