"""Who is calling the admin API: an API key (`Authorization: Bearer sb_live_…`, scripts) or a
browser session cookie (people; unsafe methods also need the CSRF token).

API keys are the shop's keys with an admin scope (tenants/api_keys.py): the scope is the role.
A key is tried first, so a script never depends on a cookie jar. A session (admin_api/
people.py) gives the role of the user's membership in the session's shop, read on every
request: a role changed or taken away applies at once. A platform operator's session has no
shop and the role `operator` (operators sign in with a session only: no API key opens the
operator's routes, so the one thing that creates shops needs a person and a password).

CSRF: the cookie is SameSite=Lax, and unsafe methods with a session must also send the
header X-CSRF-Token with the session's token (HMAC of the cookie with settings.csrf_key, given
at login). A cross-site page can make the browser send the cookie but cannot read the token.
"""

from __future__ import annotations

import hmac

from sanic import Request
from sanic.response import HTTPResponse

from admin_api import people
from admin_api.errors import Forbidden, Unauthorized
from admin_api.principal import OPERATOR, Principal
from core.settings import Settings
from tenants.api_keys import ADMIN_SCOPES, InvalidApiKey

COOKIE = "sb_session"
CSRF_HEADER = "X-CSRF-Token"


async def authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            key = await request.app.ctx.keys.verify_any(token.strip(), ADMIN_SCOPES)
        except InvalidApiKey:
            raise Unauthorized("unknown, revoked or malformed API key") from None
        return Principal(role=key.scope, actor=f"key:{key.prefix}", tenant_id=key.tenant_id,
                         key_prefix=key.prefix)
    cookie = request.cookies.get(COOKIE)
    if cookie:
        session = await people.resolve(request.app.ctx.sessions, cookie)
        if session is None:
            raise Unauthorized("your session has ended: log in again")
        request.ctx.admin_session = session
        return principal_of(session)
    raise Unauthorized("log in, or send an API key as 'Authorization: Bearer <key>'")


def principal_of(session: people.Session) -> Principal:
    return Principal(role=session.shop.role if session.shop else OPERATOR,
                     actor=f"user:{session.user.email}",
                     tenant_id=session.shop.tenant_id if session.shop else None,
                     user_id=session.user.id, via_session=True)


async def check_csrf(request: Request, principal: Principal) -> None:
    """Unsafe methods with a session: X-CSRF-Token must be the session's token."""
    cookie = request.cookies.get(COOKIE) or ""
    sent = request.headers.get(CSRF_HEADER, "")
    expected = people.csrf_token(request.app.ctx.settings.csrf_key, cookie)
    if not cookie or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden(f"missing or wrong {CSRF_HEADER} header: send the csrf_token your "
                        "login answered")


def set_session_cookie(response: HTTPResponse, token: str, settings: Settings) -> None:
    """HttpOnly (no script reads it), SameSite=Lax, Secure unless COOKIE_SECURE=false, for
    the whole admin origin, as long as a session can live."""
    response.add_cookie(COOKIE, token, path="/", httponly=True, samesite="Lax",
                        secure=settings.cookie_secure,
                        max_age=int(people.SESSION_ABSOLUTE.total_seconds()))


def clear_session_cookie(response: HTTPResponse) -> None:
    response.delete_cookie(COOKIE, path="/")
