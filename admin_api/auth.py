"""Who is calling the admin API: an API key (`Authorization: Bearer sb_live_…`, scripts) or a
browser session cookie (people; unsafe methods also need the CSRF token).

API keys are the shop's keys with an admin scope (tenants/api_keys.py): the scope is the role.
"""

from __future__ import annotations

from sanic import Request

from admin_api.errors import Unauthorized
from admin_api.principal import Principal
from tenants.api_keys import ADMIN_SCOPES, InvalidApiKey


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
    raise Unauthorized()


async def check_csrf(request: Request, principal: Principal) -> None:
    """Browser sessions: not built yet, so no session principal reaches this."""
