"""People for the admin API's tests: a user with a password and a role, and a browser (its
own cookie jar) that logs in and sends the CSRF token like the owner page does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sanic_testing.testing import SanicASGITestClient  # type: ignore[import-untyped]  # no py.typed

from admin_api import people
from tenants.models import TenantRow
from tests.admin_api.conftest import Admin, Shop, api_call
from tests.sanic_client import RunningAppClient

PASSWORD = "correct horse battery staple"


async def person(admin: Admin, email: str, role: str = "owner", shop: Shop | None = None,
                 password: str = PASSWORD) -> people.User:
    """A user with this password and role in the shop (default the demo shop)."""
    user = await people.set_password(admin.sessions, email, password, create=True)
    await people.ensure_member(admin.sessions, (shop or admin.demo).id, email, role)
    return user


@dataclass
class Browser:
    """One browser: cookies kept between requests, X-CSRF-Token sent once logged in."""

    admin: Admin
    client: SanicASGITestClient = field(init=False)
    csrf: str | None = None

    def __post_init__(self) -> None:
        self.client = RunningAppClient(self.admin.app)  # the app the admin fixture runs

    async def call(self, method: str, path: str, csrf: bool = True,
                   **kwargs: Any) -> tuple[int, Any, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if csrf and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        return await api_call(self.client, method, path, headers, **kwargs)

    async def log_in(self, email: str, password: str = PASSWORD, **extra: Any) -> Any:
        status, body, _ = await self.call("POST", "/session",
                                          json={"email": email, "password": password, **extra})
        assert status == 200, body
        self.csrf = body["csrf_token"]
        return body


async def slug_of(admin: Admin, shop: Shop) -> str:
    async with admin.sessions() as session:
        row = await session.get(TenantRow, shop.id)
    assert row is not None
    return row.slug
