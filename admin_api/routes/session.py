"""Browser sessions: log in (sets the `sb_session` cookie and returns the CSRF token), who am I,
switch shop, log out, and accepting an invitation (which logs the new member in).

Logging in, reading what an invitation is for and accepting it are public routes of the API
(so are the password reset's: admin_api/routes/passwords.py). A wrong email and a wrong
password answer the same 401; failed logins are limited per email and per client address (429
with Retry-After): admin_api/people.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from sanic.response import HTTPResponse, json

from admin_api import people
from admin_api.api import API, Call, Model
from admin_api.auth import COOKIE, clear_session_cookie, set_session_cookie
from admin_api.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from admin_api.principal import EVERYONE, OPERATORS
from admin_api.tables import AuditRow
from connectors import proxies
from core.db import utcnow
from tenants.models import TenantRow

ANYONE_SIGNED_IN = EVERYONE | OPERATORS


class Gone(BadRequest):
    """An invitation used already or expired."""

    status = 410


class LoginIn(Model):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=people.MAX_PASSWORD)
    shop: str | None = Field(None, max_length=64,
                             description="the shop's slug; default: your first shop")


class UserOut(Model):
    id: str
    email: str
    name: str | None
    is_operator: bool


class ShopOut(Model):
    id: str
    slug: str
    name: str
    role: str = Field(description="your role there: owner | designer | agent")


class SessionOut(Model):
    user: UserOut | None = Field(description="the person; null for an API key")
    shop: ShopOut | None = Field(description="the shop this session (or key) acts in; null "
                                             "for a platform operator's session")
    role: str = Field(description="owner | designer | agent | operator")
    csrf_token: str | None = Field(description="send as X-CSRF-Token on POST/PUT/PATCH/DELETE "
                                               "with the session cookie; null for an API key")
    shops: list[ShopOut] = Field(description="every shop you have a role in")


class AcceptIn(Model):
    token: str = Field(min_length=1, max_length=200, description="from the invitation link")
    password: str = Field(min_length=people.MIN_PASSWORD, max_length=people.MAX_PASSWORD,
                          description="your new password (or your existing one, when the "
                                      "email has an account already)")
    name: str | None = Field(None, max_length=200)


class InvitationIn(Model):
    token: str = Field(min_length=1, max_length=200, description="from the invitation link")


class InvitationOut(Model):
    shop: str = Field(description="the inviting shop's name")
    email: str = Field(description="whom the invitation is for")
    role: str = Field(description="the role it gives: owner | designer | agent")
    expires_at: datetime
    has_account: bool | None = Field(
        description="the email has an account already: accepting takes its password (and sets "
                    "no new one). Said only for a link that was mailed to the invitee; null for "
                    "a link the inviting owner passed on (ask the person instead)")


class SwitchIn(Model):
    shop: str | None = Field(description="a shop's slug; null: an operator's shop-less view")


def _shop_out(shop: people.ShopRole) -> ShopOut:
    return ShopOut(id=shop.tenant_id, slug=shop.slug, name=shop.name, role=shop.role)


async def session_out(call: Call[Any, Any], session: people.Session,
                      token: str) -> SessionOut:
    user = session.user
    return SessionOut(
        user=UserOut(id=user.id, email=user.email, name=user.name,
                     is_operator=user.is_operator),
        shop=_shop_out(session.shop) if session.shop else None, role=session.role,
        csrf_token=people.csrf_token(call.ctx.settings.csrf_key, token),
        shops=[_shop_out(s) for s in await people.shops_of(call.ctx.sessions, user.id)])


def with_cookie(out: SessionOut, token: str, call: Call[Any, Any]) -> HTTPResponse:
    response = json(out.model_dump(mode="json"))
    set_session_cookie(response, token, call.ctx.settings)
    return response


async def _audit(call: Call[Any, Any], session: people.Session, action: str) -> None:
    async with call.ctx.sessions() as db:
        db.add(AuditRow(tenant_id=session.shop.tenant_id if session.shop else None,
                        actor=f"user:{session.user.email}", action=action,
                        target=session.user.id, created_at=utcnow()))
        await db.commit()


@API.route("POST", "/session", public=True, roles=frozenset(), body=LoginIn,
           response=SessionOut, summary="Log in", errors=(401, 403, 429))
async def log_in(call: Call[LoginIn, None]) -> HTTPResponse:
    """Sets the HttpOnly `sb_session` cookie; the answer's csrf_token goes in X-CSRF-Token on
    unsafe requests. 401 alike for an unknown email and a wrong password; 429 with
    Retry-After after too many failures (5 per email, 20 per address in 15 minutes)."""
    try:
        issued = await people.login(call.ctx.sessions, call.body.email, call.body.password,
                                    proxies.client_address(call.request), call.body.shop)
    except people.LoginThrottled as exc:
        raise TooManyRequests(str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    except people.LoginRefused as exc:
        raise Unauthorized(str(exc), headers={"WWW-Authenticate": 'Cookie realm="admin"'}
                           ) from None
    except people.NotAMember as exc:
        raise Forbidden(str(exc)) from None
    await _audit(call, issued.session, "session.login")
    return with_cookie(await session_out(call, issued.session, issued.token), issued.token,
                        call)


@API.route("GET", "/session", roles=ANYONE_SIGNED_IN, response=SessionOut,
           summary="Who am I")
async def who_am_i(call: Call[None, None]) -> SessionOut:
    """The person, shop and role of this session (or the shop and role of this API key)."""
    session: people.Session | None = getattr(call.request.ctx, "admin_session", None)
    if session is None:  # an API key
        tenant = call.principal.shop
        async with call.ctx.sessions() as db:
            row = await db.get(TenantRow, tenant)
        shop = ShopOut(id=tenant, slug=row.slug if row else "", name=row.name if row else "",
                       role=call.principal.role)
        return SessionOut(user=None, shop=shop, role=call.principal.role, csrf_token=None,
                          shops=[shop])
    return await session_out(call, session, call.request.cookies.get(COOKIE) or "")


@API.route("POST", "/session/shop", roles=ANYONE_SIGNED_IN, body=SwitchIn, response=SessionOut,
           summary="Switch the session to another of your shops")
async def switch_shop(call: Call[SwitchIn, None]) -> SessionOut:
    session: people.Session | None = getattr(call.request.ctx, "admin_session", None)
    if session is None:
        raise Forbidden("an API key belongs to one shop: use a key of the other shop")
    try:
        moved = await people.switch_shop(call.ctx.sessions, session, call.body.shop)
    except people.NotAMember as exc:
        raise Forbidden(str(exc)) from None
    call.request.ctx.admin_session = moved
    return await session_out(call, moved, call.request.cookies.get(COOKIE) or "")


@API.route("DELETE", "/session", roles=ANYONE_SIGNED_IN, summary="Log out")
async def log_out(call: Call[None, None]) -> HTTPResponse:
    """Ends the session and clears the cookie (with an API key: nothing to end)."""
    response = HTTPResponse(status=204)
    cookie = call.request.cookies.get(COOKIE)
    session: people.Session | None = getattr(call.request.ctx, "admin_session", None)
    if cookie and session is not None:
        await people.logout(call.ctx.sessions, cookie)
        await _audit(call, session, "session.logout")
        clear_session_cookie(response)
    return response


@API.route("POST", "/invitations/lookup", public=True, roles=frozenset(), body=InvitationIn,
           response=InvitationOut, summary="What an invitation link is for",
           errors=(404, 410))
async def look_up_invitation(call: Call[InvitationIn, None]) -> InvitationOut:
    """The shop, role and email of a usable invitation, for the invitation page to say what
    joining means before asking for a password (the token travels in the body, not in an
    address that logs keep). A used or expired link is 410; an unknown one 404."""
    try:
        invitation, has_account = await people.pending_invitation(call.ctx.sessions,
                                                                   call.body.token)
    except people.InvitationGone as exc:
        raise Gone(str(exc)) from None
    except people.InvalidInvitation as exc:
        raise NotFound(str(exc)) from None
    async with call.ctx.sessions() as db:
        shop = await db.get(TenantRow, invitation.tenant_id)
    return InvitationOut(shop=shop.name if shop else "", email=invitation.email,
                         role=invitation.role, expires_at=invitation.expires_at,
                         has_account=has_account)


@API.route("POST", "/invitations/accept", public=True, roles=frozenset(), body=AcceptIn,
           response=SessionOut, summary="Accept an invitation", errors=(403, 404, 410, 429))
async def accept_invitation(call: Call[AcceptIn, None]) -> HTTPResponse:
    """Sets your password (a new account) and your role in the inviting shop, and logs you in
    there. A used or expired link is 410; an unknown one 404; an email with an account
    already must give that account's password (403 otherwise; limited as logins are: 429).
    An account whose email was never confirmed by mail joins only through a mailed link (403
    for one passed on by hand, until a reset mail confirms it)."""
    try:
        user, invitation = await people.accept(call.ctx.sessions, call.body.token,
                                               call.body.password, call.body.name,
                                               proxies.client_address(call.request))
    except people.InvitationGone as exc:
        raise Gone(str(exc)) from None
    except people.InvalidInvitation as exc:
        raise NotFound(str(exc)) from None
    except (people.AccountExists, people.UnprovenAccount) as exc:
        raise Forbidden(str(exc)) from None
    except people.LoginThrottled as exc:
        raise TooManyRequests(str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    except people.WeakPassword as exc:
        raise Unprocessable(str(exc)) from None
    issued = await people.start_session(call.ctx.sessions, user,
                                        await _slug(call, invitation.tenant_id))
    async with call.ctx.sessions() as db:
        db.add(AuditRow(tenant_id=invitation.tenant_id, actor=f"user:{user.email}",
                        action="user.join", target=user.id, after={"role": invitation.role},
                        created_at=utcnow()))
        await db.commit()
    return with_cookie(await session_out(call, issued.session, issued.token), issued.token,
                        call)


async def _slug(call: Call[Any, Any], tenant_id: str) -> str:
    async with call.ctx.sessions() as db:
        row = await db.get(TenantRow, tenant_id)
    return row.slug if row else ""
