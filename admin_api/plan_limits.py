"""The shop's plan limits where they bite in the admin API: one more channel, knowledge
document or agent than the plan allows, or a feature it lacks (own models), is refused with
402 `{"detail", "limit", "plan", "allowed", "used", "upgrade"}` before anything changes.

The detail names the limit and the plan and tells the owner how to upgrade (GET
/api/v1/billing/plans, then POST /api/v1/billing/checkout). Changing what the shop already has
is never refused: new credentials for a configured channel, a re-upload of an existing
document, a role change of someone who is an agent already. With billing off (no
STRIPE_API_KEY) every check passes.

The plan is read from the database on each check (`Accounts.state`, not the gateway's cached
one): an owner who just upgraded is not refused for the next 30 s. The counts are the ones GET
/billing shows (`usage`), from the same functions here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import func, select

from admin_api.api import Call
from admin_api.errors import PaymentRequired
from admin_api.people import invitation_number
from admin_api.tables import InviteRow, MembershipRow
from admin_api.worker import INGEST
from billing.plans import Plan
from core.db import utcnow
from core.jobs import active_jobs
from knowledge.tables import KnowledgeDocumentRow
from tenants.api_keys import ApiKeyRow

AGENT = "agent"
UPGRADE = "/api/v1/billing/plans"
# Channels a plan counts: every channel but the web widget (plans.yml `channels`).
FREE_CHANNELS = frozenset({"web"})
_NOUNS = {"channels": "channels besides the web widget", "knowledge_documents":
          "knowledge documents", "agents": "agents", "own_models": "the shop's own models"}


async def binding_plan(call: Call[Any, Any]) -> Plan | None:
    """The plan whose limits bind the caller's shop now; None when billing is off."""
    accounts = call.ctx.billing
    if not accounts.enabled:
        return None
    state = await accounts.state(call.shop)
    return state.plan


def refusal(plan: Plan, limit: str, allowed: int | None, used: int | None) -> PaymentRequired:
    noun = _NOUNS.get(limit, limit)
    if allowed is None or limit == "own_models":
        what = f"the {plan.name} plan does not include {noun}"
    else:
        what = f"the {plan.name} plan allows {allowed} {noun} and the shop has {used}"
    return PaymentRequired(
        f"{what}; an owner can upgrade: see the plans at GET {UPGRADE}, then POST "
        "/api/v1/billing/checkout", extra={"limit": limit, "plan": plan.name,
                                           "allowed": allowed, "used": used,
                                           "upgrade": UPGRADE})


def _check(plan: Plan | None, limit: str, used: int) -> None:
    if plan is None:
        return
    allowed = getattr(plan.limits, limit)
    if allowed is not None and used >= allowed:
        raise refusal(plan, limit, allowed, used)


# --- counts (GET /billing shows the same) ---------------------------------------------------

def configured_channels(credentials: Mapping[str, Any], sections: Mapping[str, str]) -> set[str]:
    """The channels (name -> credentials section) with stored credentials, the widget aside."""
    return {name for name, section in sections.items()
            if name not in FREE_CHANNELS and credentials.get(section)}


async def document_count(call: Call[Any, Any]) -> int:
    """Documents in the knowledge base plus new ones being ingested."""
    return len(await _document_names(call))


async def _document_names(call: Call[Any, Any]) -> set[str]:
    async with call.ctx.sessions() as session:
        names = set((await session.execute(select(KnowledgeDocumentRow.source).where(
            KnowledgeDocumentRow.tenant_id == call.shop))).scalars())
    for job in await active_jobs(call.ctx.sessions, call.shop, "knowledge."):
        source = job.params.get("source")
        if isinstance(source, str) and job.kind == INGEST:
            names.add(source)  # an ingestion queued: the document is on its way
    return names


async def agent_count(call: Call[Any, Any], besides_email: str | None = None) -> int:
    """Members with the agent role, unexpired invitations as agents and unrevoked agent API keys
    (a key claims and answers conversations as a person does; owners answer too, uncounted);
    `besides_email`: leave out that address's pending invitation (it is being replaced)."""
    return sum(await agent_seats(call, besides_email))


async def agent_seats(call: Call[Any, Any], besides_email: str | None = None
                      ) -> tuple[int, int]:
    """`agent_count`'s seats as (people, API keys): people are members with the agent role
    and unexpired invitations as agents."""
    async with call.ctx.sessions() as session:
        keys = (await session.execute(select(func.count(ApiKeyRow.id)).where(
            ApiKeyRow.tenant_id == call.shop, ApiKeyRow.scope == AGENT,
            ApiKeyRow.revoked_at.is_(None)))).scalar_one()
        members = (await session.execute(select(func.count(MembershipRow.id)).where(
            MembershipRow.tenant_id == call.shop, MembershipRow.role == AGENT))).scalar_one()
        invited = select(func.count(InviteRow.id)).where(
            InviteRow.tenant_id == call.shop, InviteRow.role == AGENT,
            InviteRow.accepted_at.is_(None), InviteRow.expires_at > utcnow())
        if besides_email is not None:
            invited = invited.where(InviteRow.email != besides_email)
        pending = (await session.execute(invited)).scalar_one()
    return int(members) + int(pending), int(keys)


# --- checks ---------------------------------------------------------------------------------

def require_channel(plan: Plan | None, channel: str, credentials: Mapping[str, Any],
                    sections: Mapping[str, str]) -> None:
    """Before storing `channel`'s credentials: 402 when it would be one channel too many for
    `plan` (`binding_plan`, read before the caller's own session: one SQLite connection)."""
    configured = configured_channels(credentials, sections)
    if channel in FREE_CHANNELS or channel in configured:
        return
    _check(plan, "channels", len(configured))


async def require_document(call: Call[Any, Any], name: str) -> None:
    """Before ingesting `name`: 402 when it is a new document past the plan's limit."""
    plan = await binding_plan(call)
    if plan is None or plan.limits.knowledge_documents is None:
        return
    names = await _document_names(call)
    if name not in names:
        _check(plan, "knowledge_documents", len(names))


async def require_agent(call: Call[Any, Any], *, email: str | None = None,
                        current_roles: Collection[str] = ()) -> None:
    """Before someone becomes an agent (invited as one, or a role changed to it): 402 past the
    plan's limit. Nothing to check when they are an agent already (`current_roles`)."""
    if AGENT in current_roles:
        return
    plan = await binding_plan(call)
    if plan is None or plan.limits.agents is None:
        return
    _check(plan, "agents", await agent_count(call, besides_email=email))


async def role_of(call: Call[Any, Any], target: str) -> str | None:
    """The role of a member (user id) or pending invitation (invite-<n>) of the shop."""
    number = invitation_number(target)
    async with call.ctx.sessions() as session:
        if number is not None:
            query = select(InviteRow.role).where(InviteRow.tenant_id == call.shop,
                                                 InviteRow.id == number,
                                                 InviteRow.accepted_at.is_(None))
        else:
            query = select(MembershipRow.role).where(MembershipRow.tenant_id == call.shop,
                                                     MembershipRow.user_id == target)
        role: str | None = (await session.execute(query)).scalars().first()
    return role


async def require_own_models(call: Call[Any, Any]) -> None:
    """Before designers train the shop's own model (issue 15's training routes call this)."""
    plan = await binding_plan(call)
    if plan is not None and not plan.limits.own_models:
        raise refusal(plan, "own_models", None, None)
