"""A real inbox and outbox on a real database (SQLite always; PostgreSQL and Redis when they
answer), a scripted Rasa over HTTP and an in-memory provider whose sends can be told to fail."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sanic import Blueprint
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from connectors.channels.contract import Channel
from connectors.credentials import ChannelCredentials
from connectors.inbox import Inbox
from connectors.messages import InboundMessage
from connectors.outbound import OutboundContext, Reply
from connectors.outbox import Outbox
from connectors.rasa_client import RasaClient
from core.settings import Secret
from devtools.demo_shop import DEMO_TENANT_ID
from tenants import Tenant, TenantResolver
from tenants.crypto import CredentialsBox
from tenants.models import TenantRow
from tests.conftest import services
from tests.databases import database_params, migrated_url, seeded_sessions
from tests.fakes.rasa_server import RasaFake

KEY = CredentialsBox.generate_key()


class MemorySender:
    """A provider that keeps what it is sent: one part per bot message's text."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []  # (to, part)
        self.contexts: list[OutboundContext] = []
        self.failures: list[Exception] = []  # raised by the next deliveries, in order
        self.part_failures: dict[str, list[Exception]] = {}  # raised when sending that part

    def render(self, context: OutboundContext, replies: Sequence[Reply]) -> list[str]:
        self.contexts.append(context)
        return [m["text"] for r in replies for m in r.messages]

    async def deliver(self, context: OutboundContext, part: str) -> str:
        if self.failures:
            raise self.failures.pop(0)
        if self.part_failures.get(part):
            raise self.part_failures[part].pop(0)
        self.sent.append((context.to, part))
        return f"mem-{len(self.sent) - 1}"


def _memory_check(section: Mapping[str, Any]) -> list[str]:
    return [] if section.get("token") else ["memory.token is missing"]


MEMORY = Channel(name="memory", label="Memory", routes=lambda channel: Blueprint("memory"),
                 check_credentials=_memory_check, status_path="status")


@dataclass
class World:
    inbox: Inbox
    outbox: Outbox
    sender: MemorySender
    rasa: RasaFake
    sessions: async_sessionmaker
    tenant: Tenant
    run: str  # unique per test: Redis outlives the database
    redis: Any = None

    def message(self, text: str, message_id: str, user: str = "+15550001",
                channel: str = "sms", **kw: Any) -> InboundMessage:
        return InboundMessage(tenant=self.tenant, provider="memory", channel=channel,
                              user_key=user, text=text, message_id=f"{message_id}-{self.run}",
                              **kw)

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every turn, retry and deferred message of the inbox is done."""
        async with asyncio.timeout(timeout):
            while self.inbox.busy:
                await asyncio.sleep(0.01)

    async def rows(self, model: Any) -> list[Any]:
        async with self.sessions() as session:
            return list((await session.execute(select(model).order_by(model.id))).scalars())



def make_outbox(sessions: async_sessionmaker, sender: MemorySender, **kw: Any) -> Outbox:
    """An outbox whose only provider is `sender`, as the gateway builds it."""
    options: dict[str, Any] = {"public_base_url": "https://bot.example.com", "retry_wait": 0.01}
    return Outbox(sessions, ChannelCredentials(CredentialsBox(KEY)), {"memory": MEMORY},
                  {"memory": sender}, **{**options, **kw})


@pytest.fixture(scope="module")
def rasa() -> Iterator[RasaFake]:
    with RasaFake() as fake:
        yield fake


@pytest_asyncio.fixture(params=database_params())
async def world(request: pytest.FixtureRequest, tmp_path: Path,
                rasa: RasaFake) -> AsyncIterator[World]:
    url = migrated_url(request.param, tmp_path)
    async with seeded_sessions(url) as (_, sessions):
        async with sessions() as session:
            await session.execute(update(TenantRow).where(TenantRow.id == DEMO_TENANT_ID).values(
                credentials_encrypted=CredentialsBox(KEY).seal({"memory": {"token": "t"}})))
            await session.commit()
        tenant = await TenantResolver(sessions).get(DEMO_TENANT_ID)
        redis = None
        redis_url = services()["redis_url"]
        if request.param == "postgresql" and redis_url:
            import redis.asyncio as aioredis
            redis = aioredis.from_url(redis_url)
        client = RasaClient(rasa.base_url, Secret("t"), 5.0, rasa.base_url)
        sender = MemorySender()
        outbox = make_outbox(sessions, sender)
        inbox = Inbox(sessions, client, outbox, redis=redis, retry_wait=0.01,
                      tenants=TenantResolver(sessions).get, retry_after=(0.05, 0.05))
        world = World(inbox=inbox,
                      outbox=outbox, sender=sender, rasa=rasa, sessions=sessions, tenant=tenant,
                      run=uuid.uuid4().hex[:8], redis=redis)
        rasa.seen.clear()
        yield world
        await world.inbox.drain()
        await client.aclose()
        if redis is not None:
            await redis.aclose()
