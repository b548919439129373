"""The shop's people: list members and pending invitations, invite by email, change a role,
remove someone. Owners only. A shop always keeps an owner (409 for the last one).

Members are named by their user id; pending invitations by `invite-<n>` in the same list, so
one PATCH or DELETE changes or cancels either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, Field

from admin_api import people
from admin_api.api import API, Call, Model, Page, PageQuery
from admin_api.audit import record
from admin_api.errors import Conflict, NotFound, Unavailable
from admin_api.mail import MailError, deliver_invitation
from admin_api.plan_limits import AGENT, require_agent, role_of
from admin_api.principal import OWNERS

Role = Literal["owner", "designer", "agent"]


# An email address in a request, checked alike by the document and the code: loosely (one @,
# a dot in the domain, no spaces), since the invitation mail is the real check; stored
# normalised (people.normal_email).
EmailAddress = Annotated[str, Field(
    min_length=3, max_length=254, pattern=r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$",
    description="an email address"), AfterValidator(people.normal_email)]


class MemberOut(Model):
    id: str = Field(description="the user's id, or invite-<n> for a pending invitation")
    email: str
    name: str | None
    role: Role
    status: Literal["active", "invited"]
    since: datetime = Field(description="member since, or invited at")
    last_login_at: datetime | None
    expires_at: datetime | None = Field(description="when a pending invitation stops working")

    @classmethod
    def of_member(cls, member: people.Member) -> MemberOut:
        return cls(id=member.user_id, email=member.email, name=member.name,
                   role=cast(Role, member.role),
                   status="active", since=member.since, last_login_at=member.last_login_at,
                   expires_at=None)

    @classmethod
    def of_invitation(cls, invitation: people.Invitation) -> MemberOut:
        return cls(id=invitation.public_id, email=invitation.email, name=None,
                   role=cast(Role, invitation.role),
                   status="invited", since=invitation.created_at, last_login_at=None,
                   expires_at=invitation.expires_at)


class Invite(Model):
    email: EmailAddress
    role: Role


class InvitationOut(Model):
    member: MemberOut
    emailed: bool = Field(description="the link went to the address by mail")
    link: str | None = Field(description="the one-time link, only when no mail was sent "
                                         "(SMTP_URL unset): pass it on yourself")


class RoleChange(Model):
    role: Role


async def send_invitation(call: Call[Any, Any], tenant_id: str, email: str,
                          role: str) -> InvitationOut:
    """Create the invitation and mail it (or hand back its link). When the mail server fails
    the invitation is withdrawn and the answer is 503, so no link exists that nobody got."""
    issued = await people.invite(call.ctx.sessions, tenant_id, email, role,
                                 call.principal.actor,
                                 emailed=bool(call.ctx.settings.smtp_url))
    base = f"{call.request.scheme}://{call.request.host}"
    try:
        link = await deliver_invitation(
            call.ctx.settings, base_url=base, token=issued.token, email=email,
            shop=await people.shop_name(call.ctx.sessions, tenant_id), role=role,
            invited_by=call.principal.actor)
    except MailError as exc:
        await people.cancel_invitation(call.ctx.sessions, tenant_id,
                                       issued.invitation.public_id)
        raise Unavailable(f"the invitation could not be mailed: {exc}") from None
    return InvitationOut(member=MemberOut.of_invitation(issued.invitation),
                         emailed=link is None, link=link)


@API.route("GET", "/users", roles=OWNERS, query=PageQuery, response=Page[MemberOut],
           summary="List the shop's people")
async def list_users(call: Call[None, PageQuery]) -> Page[MemberOut]:
    """Members with their role, then pending invitations."""
    everyone = [MemberOut.of_member(m) for m in await people.members(call.ctx.sessions,
                                                                     call.shop)]
    everyone += [MemberOut.of_invitation(i)
                 for i in await people.pending_invitations(call.ctx.sessions, call.shop)]
    chosen = everyone[call.query.offset:call.query.offset + call.query.page_size]
    return Page[MemberOut](items=chosen, total=len(everyone), page=call.query.page,
                           page_size=call.query.page_size)


@API.route("POST", "/users", roles=OWNERS, body=Invite, response=InvitationOut, status=201,
           summary="Invite someone to the shop", errors=(402, 409, 503))
async def invite_user(call: Call[Invite, None]) -> InvitationOut:
    """Sends a one-time link (7 days) by mail; without SMTP_URL the answer carries it.
    Inviting the same email again replaces the pending invitation; a member already: 409."""
    if call.body.role == AGENT:  # one agent more than the plan allows: 402
        await require_agent(call, email=call.body.email)
    try:
        out = await send_invitation(call, call.shop, call.body.email, call.body.role)
    except people.AlreadyMember as exc:
        raise Conflict(str(exc)) from None
    await record(call, "user.invite", target=call.body.email,
                 after={"role": call.body.role, "emailed": out.emailed})
    return out


@API.route("PATCH", "/users/{user_id}", roles=OWNERS, body=RoleChange, response=MemberOut,
           summary="Change someone's role", errors=(402, 409))
async def change_role(call: Call[RoleChange, None]) -> MemberOut:
    target = call.path["user_id"]
    if call.body.role == AGENT and call.ctx.billing.enabled:  # past the plan's limit: 402
        current = await role_of(call, target)
        if current is not None:  # unknown: 404 below
            await require_agent(call, current_roles=(current,))
    try:
        if people.invitation_number(target) is not None:
            invitation, before = await people.change_invitation(
                call.ctx.sessions, call.shop, target, call.body.role)
            out = MemberOut.of_invitation(invitation)
        else:
            member, before = await people.set_role(call.ctx.sessions, call.shop, target,
                                                   call.body.role)
            out = MemberOut.of_member(member)
    except people.UnknownMember as exc:
        raise NotFound(str(exc)) from None
    except people.LastOwner as exc:
        raise Conflict(str(exc)) from None
    await record(call, "user.role", target=out.email, before={"role": before},
                 after={"role": out.role})
    return out


@API.route("DELETE", "/users/{user_id}", roles=OWNERS, summary="Remove someone from the shop",
           errors=(409,))
async def remove_user(call: Call[None, None]) -> None:
    """Their sessions in this shop end at once; a pending invitation is withdrawn."""
    target = call.path["user_id"]
    try:
        if people.invitation_number(target) is not None:
            invitation = await people.cancel_invitation(call.ctx.sessions, call.shop, target)
            await record(call, "user.uninvite", target=invitation.email,
                         before={"role": invitation.role})
            return
        member = await people.remove_member(call.ctx.sessions, call.shop, target)
    except people.UnknownMember as exc:
        raise NotFound(str(exc)) from None
    except people.LastOwner as exc:
        raise Conflict(str(exc)) from None
    await record(call, "user.remove", target=member.email, before={"role": member.role})
