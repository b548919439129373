"""schemathesis against the document the admin service serves: no input the document allows
may make the service fail (a 5xx), and every answer must match what the document promises
(status codes, content types, response schemas).

The service runs as it does in production, `python -m admin_api serve` in its own process on
a free loopback port, on a migrated SQLite database with the demo shop and one API key per
role. Every operation is fuzzed as whichever of the demo shop's owner (who may call almost
everything) and designer (texts, knowledge, jobs, conversations) may call it, with a fixed
number of examples and derandomised generation, so a run is repeatable and takes well under
two minutes. Then every operation gets input the document refuses (as the owner): a 4xx,
never a 5xx.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import admin_api.routes  # noqa: F401  (declares every route)
from admin_api.api import API, PREFIX
from admin_api.app import TITLE, VERSION
from devtools.bootstrap import migrate
from devtools.demo_shop import DEMO_TENANT_ID
from tenants.api_keys import issue_key
from tests.databases import seeded_sessions
from tests.fakes.workshop_server import TrainingWorkshop
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("owner", "designer")
EXAMPLES = 20  # per operation and role: ~40 operations x 2 roles in about a minute


@dataclass(frozen=True)
class Served:
    base: str
    keys: dict[str, str]  # role -> the demo shop's key
    log: Path

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


async def _demo_keys(url: str) -> dict[str, str]:
    async with seeded_sessions(url) as (_, sessions):
        return {role: (await issue_key(sessions, DEMO_TENANT_ID, f"fuzz {role}",
                                       scope=role)).secret for role in ROLES}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    var = tmp_path_factory.mktemp("admin-served")
    url = f"sqlite:///{var / 'admin.db'}"
    migrate(url)
    keys = asyncio.run(_demo_keys(url))
    # POST /training/validate and POST /models ask the workshop for Rasa's checks once drafts
    # exist, POST /models/{id}/activate tells it the shop's model (503 without it): a
    # stand-in that finds nothing and trains in a few hundred ms.
    workshop = TrainingWorkshop().start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(SWITCHBOARD_VAR_DIR=str(var), DATABASE_URL=url, ADMIN_HOST="127.0.0.1",
               ADMIN_PORT=str(port), ADMIN_METRICS_PORT="0", COOKIE_SECURE="false",
               RASA_TOKEN="schemathesis-rasa-token", PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING",
               WORKSHOP_URL=workshop.base_url, KNOWLEDGE_WARM="false",  # loaded if a job needs it
               SWITCHBOARD_CREDENTIALS_KEY="lD3k5cRsZ0sJ2zv0cH2b1K0mD0vYt8bqz9vO3J2bX1c=")
    log = var / "admin.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "admin_api", "serve"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the admin service exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the admin service did not answer:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Served(base, keys, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        workshop.stop()


@pytest.fixture(scope="module")
def served_schema(served: Served) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{served.base}/openapi.json")


# Not positive_data_acceptance: rules JSON Schema cannot say (a PATCH must change something,
# a time zone must exist, `from` comes before `to`, an address must be deliverable) answer a
# documented 422 for input the schema allows, which is right.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
NEGATIVE = settings(FUZZ, max_examples=EXAMPLES // 2)
# (method, path) of every operation, from the declarations the served document is built from
# (tests/admin_api/test_matrix.py checks the two are the same), for one test per operation.
# The live stream (text/event-stream, GET /events) is left out: it answers until the client
# goes away, and test_matrix.py checks its roles and shop isolation.
DECLARED = [(method.upper(), path, spec)
            for path, item in API.openapi(title=TITLE, version=VERSION)["paths"].items()
            for method, spec in item.items()
            if "text/event-stream" not in spec["responses"].get("200", {}).get("content", {})]
OPERATIONS = [(method, path) for method, path, _ in DECLARED]
# Each operation fuzzed as each of ROLES that may call it (`x-roles`; public ones as both), or
# as the owner when neither may (operators' routes: refused, and the refusal must match the
# document too). A role's refusals are test_matrix.py's: fuzzing them would only repeat a 403.
FUZZED = [(role, method, path) for method, path, spec in DECLARED
          for role in ([r for r in ROLES if r in spec.get("x-roles", ROLES)] or ["owner"])]


@pytest.mark.parametrize(("role", "method", "path"), FUZZED,
                         ids=[f"{m} {p.removeprefix(PREFIX)}-{r}" for r, m, p in FUZZED])
def test_no_input_the_document_allows_breaks_the_service(
        served: Served, served_schema: BaseSchema, role: str, method: str, path: str) -> None:
    operation = served_schema[path][method]

    @FUZZ
    @given(case=operation.as_strategy())
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=served.auth(role), checks=CHECKS, timeout=30)

    fuzz()


@pytest.mark.parametrize(("method", "path"), OPERATIONS,
                         ids=[f"{m} {p.removeprefix(PREFIX)}" for m, p in OPERATIONS])
def test_no_input_the_document_refuses_breaks_the_service(
        served: Served, served_schema: BaseSchema, method: str, path: str) -> None:
    """Bodies and parameters the document does not allow (wrong types, missing fields, out
    of range): refused with a 4xx, never a 5xx."""
    operation = served_schema[path][method]

    @NEGATIVE
    @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=served.auth("owner"), checks=[not_a_server_error],
                               timeout=30)

    fuzz()
