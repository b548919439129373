"""Forgotten passwords: ask for a reset link by email, say whose password a link resets, and
choose a new password with it (which logs the person in, as accepting an invitation does).

All three are public routes (nobody who forgot a password has a session). Asking answers the
same 202 for any email, with or without an account, with or without the platform's mail
configured; the mail goes out after the answer (admin_api/passwords.py says why and how
requests are limited).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field
from sanic.response import HTTPResponse

from admin_api import passwords, people
from admin_api.api import API, Call, Model
from admin_api.errors import Forbidden, NotFound, TooManyRequests, Unprocessable
from admin_api.routes.session import (
    Gone,
    SessionOut,
    session_out,
    with_cookie,
)
from admin_api.routes.users import EmailAddress
from connectors import proxies

ASKED = ("If an account exists for that address, we sent a link to choose a new password. "
         "It works once, for 1 hour.")


class ForgotIn(Model):
    email: EmailAddress


class ForgotOut(Model):
    detail: str = Field(description="the same sentence whether or not the email has an account")


class ResetLinkIn(Model):
    token: str = Field(min_length=1, max_length=200, description="from the reset link")


class ResetLinkOut(Model):
    email: str = Field(description="the account whose password the link sets")
    expires_at: datetime


class ResetIn(Model):
    token: str = Field(min_length=1, max_length=200, description="from the reset link")
    password: str = Field(min_length=people.MIN_PASSWORD, max_length=people.MAX_PASSWORD,
                          description="the new password")


@API.route("POST", "/password/forgot", public=True, roles=frozenset(), body=ForgotIn,
           response=ForgotOut, status=202, summary="Ask for a password reset link",
           errors=(429,))
async def forgot_password(call: Call[ForgotIn, None]) -> ForgotOut:
    """Mails a one-time link (1 hour) to choose a new password when the email has an account
    and the platform sends mail, and its inbox got fewer than 6 reset mails in the hour (a
    mail that failed to go out is not counted). The answer is the same in every case; 429
    with Retry-After only past what this client may ask: 3 requests for one email or 10 in
    all an hour."""
    try:
        place = await passwords.count_request(call.ctx.sessions, call.body.email,
                                              proxies.client_address(call.request))
    except passwords.ResetThrottled as exc:
        raise TooManyRequests(str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    if place is not None:
        passwords.Outbox.of(call.ctx).start(passwords.mail_link(
            call.ctx.settings, call.ctx.sessions, call.body.email, place))
    return ForgotOut(detail=ASKED)


@API.route("POST", "/password/reset/lookup", public=True, roles=frozenset(), body=ResetLinkIn,
           response=ResetLinkOut, summary="Whose password a reset link sets",
           errors=(404, 410))
async def look_up_reset(call: Call[ResetLinkIn, None]) -> ResetLinkOut:
    """For the reset page to say whose password it sets, or that the link is used (410),
    expired (410) or unknown (404), before anyone types a new password. The token travels in
    the body, not in an address that logs keep."""
    try:
        email, expires_at = await passwords.check(call.ctx.sessions, call.body.token)
    except passwords.ResetGone as exc:
        raise Gone(str(exc)) from None
    except passwords.InvalidReset as exc:
        raise NotFound(str(exc)) from None
    return ResetLinkOut(email=email, expires_at=expires_at)


@API.route("POST", "/password/reset", public=True, roles=frozenset(), body=ResetIn,
           response=SessionOut, summary="Choose a new password with a reset link",
           errors=(403, 404, 410))
async def reset_password(call: Call[ResetIn, None]) -> HTTPResponse:
    """Sets the new password, ends every other session of the account and logs you in (the
    cookie and the CSRF token, as logging in does). A used or expired link is 410; an unknown
    one 404."""
    try:
        user = await passwords.reset(call.ctx.sessions, call.body.token, call.body.password)
    except passwords.ResetGone as exc:
        raise Gone(str(exc)) from None
    except passwords.InvalidReset as exc:
        raise NotFound(str(exc)) from None
    except people.WeakPassword as exc:
        raise Unprocessable([{"loc": ["password"], "msg": str(exc),
                              "type": "password_rules"}]) from None
    try:
        issued = await people.start_session(call.ctx.sessions, user)
    except people.NotAMember as exc:
        raise Forbidden(f"your password is changed, but {exc}") from None
    return with_cookie(await session_out(call, issued.session, issued.token), issued.token,
                        call)
