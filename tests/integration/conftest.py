"""One real stack per storage shape: embedded SQLite always, PostgreSQL + Redis when answering.

Every integration test runs on both, except those marked `one_shape`: what they check goes
through no storage the shapes do differently (a dialogue's turns, the widget's page), so a
second stack would only repeat them. They run on the embedded stack, the one `make run`
starts, which every suite has. What the shapes store or coordinate differently (dedupe,
outboxes, leases, counters, live events, keys, tracker stores, shop models) stays on both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    create_throwaway_database,
    drop_throwaway_database,
    empty_test_redis,
    redis_url_below,
    services,
)
from tests.fakes.anthropic_server import AnthropicFake
from tests.fakes.graph_server import GraphFake
from tests.fakes.twilio_server import TwilioFake
from tests.integration.mailbox import Mailbox
from tests.integration.stack import Stack, print_logs_on_failure
from tests.servers import free_port

SHAPES = ["embedded", "postgres+redis"]
FAKE_KEY = "sk-ant-integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`one_shape` tests leave the PostgreSQL + Redis stack out (see the module doc)."""
    repeats = [item for item in items if item.get_closest_marker("one_shape")
               and (callspec := getattr(item, "callspec", None)) is not None
               and callspec.params.get("stack") == "postgres+redis"]
    if repeats:
        config.hook.pytest_deselected(items=repeats)
        dropped = set(map(id, repeats))
        items[:] = [item for item in items if id(item) not in dropped]


@pytest.fixture(scope="session")
def anthropic_api() -> Iterator[AnthropicFake]:
    """The Messages API the stack's action server talks to (a local fake over real HTTP)."""
    with AnthropicFake(api_key=FAKE_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def twilio_api() -> Iterator[TwilioFake]:
    """Twilio's Messages API; it posts signed status callbacks (sent, delivered) like Twilio."""
    with TwilioFake(auto_status=("sent", "delivered")) as fake:
        yield fake


@pytest.fixture(scope="session")
def graph_api() -> Iterator[GraphFake]:
    """Meta's Graph API (WhatsApp Cloud) sending side."""
    with GraphFake() as fake:
        yield fake


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) receiving the shop's outbound mail."""
    with Mailbox(free_port()) as box:
        yield box


@pytest.fixture(scope="session", params=SHAPES)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          anthropic_api: AnthropicFake, twilio_api: TwilioFake, graph_api: GraphFake,
          mailbox: Mailbox) -> Iterator[Stack]:
    var_dir: Path = tmp_path_factory.mktemp(request.param.replace("+", "-"))
    found = services()
    if request.param == "postgres+redis":
        server, redis_server = found["database_url"], found["redis_url"]
        if not (server and redis_server):
            pytest.skip("PostgreSQL/Redis not answering "
                        "(make test sets TEST_DATABASE_URL/TEST_REDIS_URL)")
        # Storage of its own: its processes (the admin's job workers, say) run for the rest of
        # the session, beside other tests of this worker on the session's database.
        database_url = create_throwaway_database(server)
        # Below every worker's own: gw0 /15 -> /13, gw1 /14 -> /12 with two workers.
        redis_url = redis_url_below(
            redis_server, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
        empty_test_redis(redis_url)
        request.addfinalizer(lambda: empty_test_redis(redis_url))
        request.addfinalizer(lambda: drop_throwaway_database(server, database_url))
        st = Stack(var_dir, database_url=database_url, redis_url=redis_url)
    else:
        st = Stack(var_dir)
    st.extra_env.update(ANTHROPIC_API_KEY=FAKE_KEY, ANTHROPIC_BASE_URL=anthropic_api.base_url,
                        TWILIO_API_URL=twilio_api.base_url, GRAPH_API_URL=graph_api.base_url,
                        SANDBOX_SMTP_PORT=str(mailbox.port), SEND_ATTEMPTS="3")
    try:
        st.start()
    except Exception:
        st.stop()
        raise
    # The fakes accept what the demo shop was given at seed (secrets made up per database).
    creds = st.demo_credentials()
    twilio_api.account_sid = creds["twilio"]["account_sid"]
    twilio_api.auth_token = creds["twilio"]["auth_token"]
    graph_api.access_token = creds["meta_whatsapp"]["access_token"]
    graph_api.phone_number_ids = {creds["meta_whatsapp"]["phone_number_id"]}
    yield st
    if request.session.testsfailed:
        print_logs_on_failure(st)
    st.stop()


class Visitor:
    """A visitor on the REST channel of one shop."""

    def __init__(self, stack: Stack, tenant: str = "demo", key: str | None = None) -> None:
        """`key`: the shop's REST API key (the demo shop's from bootstrap by default)."""
        self.stack = stack
        self.tenant = tenant
        self.key = key
        self.sender = f"visitor-{uuid.uuid4().hex[:10]}"
        self.replies: list[dict[str, Any]] = []

    def say(self, message: str) -> str:
        """Send a message; return the bot's texts joined by newlines (all replies kept)."""
        response = httpx.post(
            f"{self.stack.gateway}/channels/{self.tenant}/rest/webhook",
            json={"sender": self.sender, "message": message},
            headers=({"Authorization": f"Bearer {self.key}"} if self.key
                     else self.stack.rest_headers()),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        replies = response.json()
        assert all(r["recipient_id"] == self.sender for r in replies)
        self.replies = replies
        return "\n".join(r.get("text", "") for r in replies)

    def buttons(self) -> list[dict[str, str]]:
        return [b for r in self.replies for b in r.get("buttons", [])]


@pytest.fixture
def visitor(stack: Stack) -> Visitor:
    return Visitor(stack)
