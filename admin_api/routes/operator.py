"""The platform operator's one route: create a shop and invite its first owner.

Operators are people (users.is_operator, made with `python -m admin_api operators create`)
signed in with a session; no API key has the operator role, so creating shops always needs a
person and a password (scripts on the server use `python -m admin_api shops create`).
"""

from __future__ import annotations

from pydantic import Field

from admin_api import people
from admin_api.api import API, Call, Model
from admin_api.audit import record
from admin_api.errors import Conflict
from admin_api.principal import OPERATORS
from admin_api.routes.users import EmailAddress, InvitationOut, send_invitation

SLUG = people.SLUG


class NewShop(Model):
    slug: str = Field(min_length=2, max_length=63, pattern=SLUG.pattern,
                      description="lowercase letters, digits and '-': the shop's short name")
    name: str = Field(min_length=1, max_length=200)
    owner_email: EmailAddress


class ShopCreated(Model):
    id: str
    slug: str
    name: str
    invitation: InvitationOut = Field(description="the first owner's invitation")


@API.route("POST", "/operator/shops", roles=OPERATORS, body=NewShop, response=ShopCreated,
           status=201, summary="Create a shop and invite its first owner", errors=(409, 503))
async def create_shop(call: Call[NewShop, None]) -> ShopCreated:
    """The shop gets a new id and every setting's default; its owner gets an invitation mail
    (or, without SMTP_URL, the answer carries the link). A taken slug is 409."""
    try:
        tenant_id = await people.add_shop(call.ctx.sessions, call.body.slug, call.body.name)
    except people.ShopExists as exc:
        raise Conflict(str(exc)) from None
    invitation = await send_invitation(call, tenant_id, call.body.owner_email, "owner")
    await record(call, "shop.create", target=call.body.slug,
                 after={"id": tenant_id, "name": call.body.name,
                        "owner": call.body.owner_email})
    return ShopCreated(id=tenant_id, slug=call.body.slug, name=call.body.name,
                       invitation=invitation)
