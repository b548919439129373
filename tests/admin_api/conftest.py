"""The admin service on a real database (SQLite always; PostgreSQL when it answers): the app
in-process through Sanic's ASGI test client, two shops (the demo shop and a second one) and an
API key per role in each, so every test can check roles and shop isolation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from argon2 import PasswordHasher, profiles
from sanic import Sanic
from sanic_testing.testing import SanicASGITestClient  # type: ignore[import-untyped]  # no py.typed
from sqlalchemy.ext.asyncio import async_sessionmaker

from admin_api import people
from admin_api.app import create_app
from core.settings import Settings
from devtools.demo_shop import DEMO_TENANT_ID
from tenants.api_keys import issue_key
from tenants.crypto import CredentialsBox
from tenants.models import TenantRow
from tests.databases import database_params, migrated_url, seeded_sessions
from tests.fakes.workshop_server import QuietWorkshop
from tests.sanic_client import RunningAppClient, stop_app

ROLES = ("owner", "designer", "agent")


@pytest.fixture(autouse=True)
def cheap_password_hashes(request: pytest.FixtureRequest,
                          monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Passwords hashed with argon2's cheapest parameters (argon2-cffi's `profiles.CHEAPEST`,
    its advice for tests): with RFC 9106's every hash and every login costs 0.2 s of CPU here,
    and these tests log in and invite hundreds of times. A test marked `real_password_hashes`
    (one that measures the hashing's cost) keeps the service's own parameters."""
    if request.node.get_closest_marker("real_password_hashes") is None:
        monkeypatch.setattr(people, "_HASHER", PasswordHasher.from_parameters(profiles.CHEAPEST))
    people._dummy_hash.cache_clear()  # made by whichever hasher comes first
    yield
    people._dummy_hash.cache_clear()


@dataclass
class Shop:
    id: str
    slug: str
    keys: dict[str, str] = field(default_factory=dict)  # role -> secret

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@dataclass
class Admin:
    app: Sanic
    client: SanicASGITestClient
    sessions: async_sessionmaker
    settings: Settings
    demo: Shop
    other: Shop
    database_url: str

    async def call(self, method: str, path: str, role: str = "owner", shop: Shop | None = None,
                   **kwargs: Any) -> tuple[int, Any]:
        """`method path` under /api/v1 with the API key of `role` in `shop` (default the demo
        shop); returns (status, JSON body or None)."""
        headers = {**(shop or self.demo).auth(role), **kwargs.pop("headers", {})}
        status, body, _ = await api_call(self.client, method, path, headers, **kwargs)
        return status, body

    def use_workshop(self, url: str) -> Admin:
        """The app asks this workshop (set before its first request opens connections)."""
        self.app.ctx.settings = replace(self.settings, workshop_url=url)
        return self


async def api_call(client: SanicASGITestClient, method: str, path: str,
                   headers: dict[str, str], **kwargs: Any) -> tuple[int, Any, Any]:
    """`method path` under /api/v1 through the test client; (status, JSON body or None, the
    response)."""
    _, response = await getattr(client, method.lower())(
        f"/api/v1{path}", headers=headers, **kwargs)
    try:
        body = response.json
    except ValueError:
        body = None
    return response.status, body, response


def admin_settings(tmp_path: Path, database_url: str, **env: str) -> Settings:
    return Settings.from_env({
        "SWITCHBOARD_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": database_url,
        "RASA_TOKEN": "test-rasa-token-" + "x" * 20,
        "SWITCHBOARD_CREDENTIALS_KEY": KEY,
        "COOKIE_SECURE": "false",
        # The shops' servers of these tests (webhooks, callbacks) listen on loopback; a test
        # of production's refusals replaces the settings (tests/admin_api/test_destinations.py).
        "ALLOW_PRIVATE_DESTINATIONS": "true",
        **env,
    })


KEY = CredentialsBox.generate_key()


async def add_shop(sessions: async_sessionmaker, slug: str) -> str:
    tenant_id = str(uuid.uuid4())
    async with sessions() as session:
        session.add(TenantRow(id=tenant_id, slug=slug, name=slug.title()))
        await session.commit()
    return tenant_id


@pytest_asyncio.fixture(params=database_params())
async def admin(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Admin]:
    url = migrated_url(request.param, tmp_path)
    settings = admin_settings(tmp_path, url)
    async with seeded_sessions(url) as (_, sessions):
        other_id = await add_shop(sessions, f"other-{uuid.uuid4().hex[:8]}")
        demo, other = Shop(DEMO_TENANT_ID, "demo"), Shop(other_id, "other")
        for shop in (demo, other):
            for role in ROLES:
                shop.keys[role] = (await issue_key(sessions, shop.id, f"test {role}",
                                                   scope=role)).secret
        app = create_app(settings, name=f"admin-test-{uuid.uuid4().hex[:8]}")
        # The test client reads a whole answer: the live stream (GET /events) ends at once.
        app.ctx.live_options = {"stream_seconds": 0.05, "heartbeat": 0.05}
        # The app runs for the whole test, as a server would (not started per request). Its
        # webhook dispatcher stays off, as it was when the test client started and stopped the
        # app around each request (it waits POLL seconds before its first pass): tests of
        # webhooks run Dispatchers of their own at chosen times; one that wants the app's own
        # sets WEBHOOK_WORKER back to True before its first request.
        app.config.WEBHOOK_WORKER = False
        client = RunningAppClient(app)
        try:
            yield Admin(app, client, sessions, settings, demo, other, url)
        finally:
            await stop_app(app)


@pytest.fixture(scope="module")
def quiet_workshop() -> Iterator[QuietWorkshop]:
    with QuietWorkshop() as workshop:
        yield workshop


@pytest.fixture
def rasa_finds_nothing(request: pytest.FixtureRequest, quiet_workshop: QuietWorkshop) -> None:
    """For modules that name it in `usefixtures`: their admin app's workshop answers that
    Rasa's checks found nothing (tests/fakes/workshop_server.py)."""
    if "admin" in request.fixturenames:
        request.getfixturevalue("admin").use_workshop(quiet_workshop.base_url)
