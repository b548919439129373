"""Every route of the admin API, checked for who may call it and for shop isolation.

The operations come from the OpenAPI document the service serves (the same declarations that
mount the routes), so a route added tomorrow is in these matrices without anyone editing this
file. Three checks:

- The roles each operation declares (`x-roles`) are the issue's role matrix, pinned here by
  hand: a route declared with the wrong role set fails, even though the server would obey it.
- The auth matrix: every protected operation called with each credential a caller can hold
  (a key of each role, none, a malformed one, a revoked owner key, a REST-channel key, a
  platform operator's browser session with its CSRF token). Allowed
  roles never get 401/403; other roles get 403; missing or invalid keys get 401; every refusal
  is JSON `{"detail": ...}`. Requests carry a minimal body built from the operation's schema
  (a 422 is fine here: it says the caller got past authentication).
- The cross-shop matrix: the other shop holds one object of every kind a fixture can create
  (key, text override, document, job, conversation, person, invitation, audit entry,
  training draft, model version), marked
  with a unique string. The demo shop's owner calls every operation with the other shop's
  ids: an id is 404, no answer contains the marker, and none of the other shop's rows changes.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import async_sessionmaker

import admin_api.routes  # noqa: F401  (declares every route)
import core.conversations
import core.jobs
import knowledge.tables
import tenants.texts
from admin_api import people
from admin_api.api import API, PREFIX
from admin_api.app import TITLE, VERSION
from admin_api.auth import COOKIE, CSRF_HEADER
from admin_api.tables import AdminSessionRow, AuditRow, InviteRow, MembershipRow, UserRow
from admin_api.training.drafts import TrainingDraftRow
from admin_api.training.gaps import gap_id
from admin_api.training.models import ModelVersionRow
from admin_api.webhook_tables import WebhookRow
from core.db import Base, utcnow
from core.sender_ids import sender_id
from tenants.api_keys import issue_key, list_keys, revoke_key
from tenants.models import TenantRow
from tests.admin_api.conftest import Admin

OWNER, DESIGNER, AGENT, OPERATOR = "owner", "designer", "agent", "operator"
EVERYONE = frozenset({OWNER, DESIGNER, AGENT})
OWNERS = frozenset({OWNER})
DESIGNERS = frozenset({OWNER, DESIGNER})
METHODS = ("get", "post", "put", "patch", "delete")
DOCUMENT = API.openapi(title=TITLE, version=VERSION)


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    path: str  # under PREFIX, with {params}
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def public(self) -> bool:
        return "security" not in self.spec

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


def operations(document: dict[str, Any] = DOCUMENT) -> list[Operation]:
    return [Operation(method.upper(), path.removeprefix(PREFIX), spec)
            for path, item in document["paths"].items()
            for method, spec in item.items() if method in METHODS]


OPERATIONS = operations()
PROTECTED = [op for op in OPERATIONS if not op.public]


def by_id(ops: list[Operation]) -> Any:
    return pytest.mark.parametrize("op", ops, ids=[op.id for op in ops])


# --- the issue's role matrix, by hand ------------------------------------------------------

def issue_roles(method: str, path: str) -> frozenset[str]:
    """Who may call `method path` according to issue 13: owner everything; designer texts,
    knowledge, jobs, training, conversations and analytics read; agent conversations read and
    the inbox; operator only shop creation; everyone their own session."""
    resource = path.strip("/").split("/")[0]
    if resource == "operator":
        return frozenset({OPERATOR})
    if resource in ("responses", "knowledge", "jobs", "training", "models"):
        return DESIGNERS
    if resource == "gaps":  # gap mining, issue 15
        return DESIGNERS
    if resource == "conversations" and method == "GET":
        return EVERYONE
    if resource in ("conversations", "agents", "events"):  # the agent inbox (issue 14)
        return frozenset({OWNER, AGENT})
    if resource == "analytics" and method == "GET":
        return DESIGNERS
    if resource == "inbox":
        return frozenset({OWNER, AGENT})
    if resource in ("session", "me"):  # one's own session: shop people and operators alike
        return EVERYONE | {OPERATOR}
    return OWNERS


# Words one of which a public (unauthenticated) path must hold, with POST: logging in,
# accepting an invitation, resetting a password. Any other public route is a hole.
PUBLIC_WORDS = ("login", "session", "invit", "accept", "password", "reset")


def test_the_served_document_is_the_one_checked_here() -> None:
    assert DOCUMENT["openapi"].startswith("3.1")
    assert OPERATIONS, "no operation declared"
    assert len({op.spec["operationId"] for op in OPERATIONS}) == len(OPERATIONS)


@pytest.mark.asyncio
async def test_the_served_document_lists_every_operation_checked_here(admin: Admin) -> None:
    _, response = await admin.client.get("/openapi.json")
    assert response.status == 200
    assert [op.id for op in operations(response.json)] == [op.id for op in OPERATIONS]


@by_id(OPERATIONS)
def test_each_operation_declares_the_issues_roles(op: Operation) -> None:
    if op.public:
        assert op.method == "POST" and any(word in op.path for word in PUBLIC_WORDS), (
            f"{op.id} needs no credentials; only logging in, accepting an invitation and "
            "resetting a password may")
        return
    assert op.spec["security"], op.id
    declared = frozenset(op.spec["x-roles"])
    assert declared == issue_roles(op.method, op.path), (
        f"{op.id} is declared for {sorted(declared)}; issue 13's matrix says "
        f"{sorted(issue_roles(op.method, op.path))}")


# --- requests built from the document ------------------------------------------------------

def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = {**DOCUMENT["components"]["schemas"][name],
                  **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


STRING_CANDIDATES = ("utter_greet", "example", "rest", "x", "a1", "2026-01-01",
                     "someone@example.com")


def example(schema: dict[str, Any]) -> Any:
    """A minimal value the schema accepts: required fields only, the smallest arrays, the
    first choice of every enum and union (not null when something else is allowed)."""
    schema = resolve(schema)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for union in ("anyOf", "oneOf"):
        if union in schema:
            options = [resolve(o) for o in schema[union]]
            chosen = [o for o in options if o.get("type") != "null"] or options
            return example(chosen[0])
    if "allOf" in schema:
        return example(schema["allOf"][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties", {})
        return {name: example(properties.get(name, {})) for name in schema.get("required", [])}
    if kind == "array":
        return [example(schema.get("items", {})) for _ in range(schema.get("minItems", 0))]
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return float(max(1, schema.get("minimum", 1)))
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    if kind == "string":
        return example_string(schema)
    return None


def example_string(schema: dict[str, Any]) -> str:
    formats = {"date": "2026-01-01", "date-time": "2026-01-01T00:00:00Z",
               "email": "someone@example.com", "uri": "https://example.com/",
               "uuid": str(uuid.UUID(int=1)), "binary": "x"}
    if schema.get("format") in formats:
        return formats[schema["format"]]
    low, high = schema.get("minLength", 1), schema.get("maxLength", 10_000)
    for candidate in STRING_CANDIDATES:
        if low <= len(candidate) <= high and (
                "pattern" not in schema or re.search(schema["pattern"], candidate)):
            return candidate
    return "x" * max(low, 1)


def request_of(op: Operation, ids: dict[str, str],
               hints: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """(URL, keyword arguments) of a plausible call: path params from `ids` (the other
    shop's objects), the required query parameters, a minimal body or a small text file.
    Optional query parameters and body fields named in `hints` get that value (the other
    shop's visitor for the privacy routes' `conversation`)."""
    hints = hints or {}
    path = op.path
    for name in op.params:
        path = path.replace("{" + name + "}", ids.get(name, "0"))
    kwargs: dict[str, Any] = {}
    query = {p["name"]: hints.get(p["name"]) or example(p["schema"])
             for p in op.spec.get("parameters", [])
             if p["in"] == "query" and (p.get("required") or p["name"] in hints)}
    if query:
        kwargs["params"] = query
    content = op.spec.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        body = example(content["application/json"]["schema"])
        schema = resolve(content["application/json"]["schema"])
        if isinstance(body, dict):
            body.update({k: v for k, v in hints.items() if k in schema.get("properties", {})})
        kwargs["content"] = json.dumps(body)
        kwargs["headers"] = {"Content-Type": "application/json"}
    elif "application/x-yaml" in content:  # a draft of training data (routes/training.py)
        kwargs["content"] = b'version: "3.1"\n'
        kwargs["headers"] = {"Content-Type": "application/x-yaml"}
    elif "multipart/form-data" in content:
        kwargs["files"] = {"file": ("note.txt", b"Parcels ship within two days.\n",
                                    "text/plain")}
    return PREFIX + path, kwargs


async def send(admin: Admin, op: Operation, ids: dict[str, str], auth: dict[str, str],
               hints: dict[str, str] | None = None) -> tuple[int, Any, str]:
    url, kwargs = request_of(op, ids, hints)
    kwargs["headers"] = {**kwargs.get("headers", {}), **auth}
    _, response = await getattr(admin.client, op.method.lower())(url, **kwargs)
    try:
        body = response.json
    except ValueError:
        body = None
    return response.status, body, response.text


# --- the other shop's objects --------------------------------------------------------------

@dataclass
class OtherShop:
    marker: str
    ids: dict[str, str]  # collection path ("/keys") -> an id of the other shop's object there
    hints: dict[str, str]  # optional fields that name a visitor -> the other shop's visitor


async def seed_other_shop(admin: Admin) -> OtherShop:
    """One object of every kind a fixture can make, in the other shop, each holding `marker`
    (a string nothing of the demo shop contains)."""
    marker = f"zq{uuid.uuid4().hex[:10]}"
    shop = admin.other.id
    now = utcnow()
    user_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
    visitor = sender_id(shop, "rest", f"visitor-{marker}")
    sessions: async_sessionmaker = admin.sessions
    async with sessions() as session:
        session.add(tenants.texts.ResponseOverrideRow(
            tenant_id=shop, name="utter_greet", updated_by="test",
            variants=[{"text": f"Hello from {marker}", "channel": None, "buttons": []}]))
        document = knowledge.tables.KnowledgeDocumentRow(
            tenant_id=shop, source=f"{marker}.md", title=f"Returns {marker}",
            content_hash="0" * 64, chunk_count=0)
        session.add(document)
        session.add(core.jobs.JobRow(
            id=job_id, tenant_id=shop, kind="knowledge.ingest", status="done", progress=1.0,
            params={"source": f"{marker}.md"}, result={"note": marker}, created_by="test"))
        session.add(UserRow(id=user_id, email=f"{marker}@example.com", name=marker))
        await session.flush()
        session.add(MembershipRow(user_id=user_id, tenant_id=shop, role="designer"))
        invite = InviteRow(tenant_id=shop, email=f"invited-{marker}@example.com", role="agent",
                           token_hash=uuid.uuid4().hex, invited_by="test",
                           expires_at=now + timedelta(days=3))
        session.add(invite)
        audit = AuditRow(tenant_id=shop, actor="test", action="settings.update",
                         target=marker, before={"name": marker}, after={"name": marker})
        session.add(audit)
        for direction, text in (("in", f"where is my order {marker}"),
                                ("out", f"It ships tomorrow {marker}")):
            session.add(core.conversations.MessageRow(
                tenant_id=shop, sender_id=visitor, channel="rest", direction=direction,
                text=text, created_at=now, handled_at=now,
                **({"intent": "order_status", "confidence": 0.9, "outcome": "flow"}
                   if direction == "in" else {})))
        # A draft by a name the demo shop does not have: reading or deleting it is a 404.
        session.add(TrainingDraftRow(
            tenant_id=shop, kind="nlu", name="sizes", size=60, updated_by="test",
            content=f'version: "3.1"\nnlu:\n  - intent: ask_{marker}\n'))
        # A ready model version (GET /models/{id} and its activation are 404 for others).
        version = ModelVersionRow(
            id=uuid.uuid4().hex, tenant_id=shop, job_id=job_id, state="ready",
            created_by=f"user:{marker}@example.com", created_at=now, finished_at=now,
            files={"nlu/sizes.yml": f"# {marker}\n"}, snapshot_sha256="0" * 64,
            fingerprint=marker, training_seconds=1.0, size_bytes=1)
        session.add(version)
        webhook = WebhookRow(tenant_id=shop, url=f"https://{marker}.example/hooks",
                             events=["handoff.requested"], secret_sealed=b"sealed",
                             created_by="test", created_at=now)
        session.add(webhook)
        await session.flush()
        ids = {"/responses": "utter_greet", "/knowledge/documents": str(document.id),
               "/webhooks": str(webhook.id),
               "/jobs": job_id, "/users": user_id, "/invites": str(invite.id),
               "/audit": str(audit.id), "/conversations": visitor, "/channels": "rest",
               "/models": version.id,
               "/training": "nlu", "/training/{kind}": "sizes",
               "/training/base": "nlu", "/training/base/{kind}": "orders",
               # What the other shop's gap of this question is called (training/gaps.py).
               "/gaps": gap_id(shop, f"where is my order {marker}")}
        await session.commit()
    key = next(k for k in await list_keys(sessions, shop) if k.scope == OWNER)
    ids["/keys"] = key.prefix
    return OtherShop(marker, ids, {"conversation": visitor})


def collection_of(op: Operation, param: str) -> str:
    """The collection a path parameter names an object of: "/knowledge/documents" for
    /knowledge/documents/{document_id}/reindex."""
    return op.path.split("{" + param + "}")[0].rstrip("/")


async def listed_id(admin: Admin, collection: str, param: str) -> str | None:
    """An id as the other shop's own owner sees it, from the collection's list (so the test
    uses whatever the route calls an id, a number, a uuid or a sender id)."""
    listing = next((op for op in OPERATIONS if op.method == "GET" and op.path == collection),
                   None)
    if listing is None:
        return None
    status, body, _ = await send(admin, listing, {}, admin.other.auth(OWNER))
    items = body.get("items") if status == 200 and isinstance(body, dict) else body
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        return None
    for field in (param, "id", "name"):
        if field in items[0] and items[0][field] is not None:
            return str(items[0][field])
    return None


async def path_ids(admin: Admin, other: OtherShop, op: Operation) -> dict[str, str]:
    """The other shop's id for each path parameter of `op`; skips when nothing can make
    an object of that kind yet."""
    ids: dict[str, str] = {}
    for param in op.params:
        collection = collection_of(op, param)
        # An id as the route's own list shows it (opaque ids cannot be guessed from a row);
        # a name (shared by every shop) as seeded, the one the other shop changed.
        if names_a_thing(param, collection):
            found = other.ids.get(collection) or await listed_id(admin, collection, param)
        else:
            found = await listed_id(admin, collection, param) or other.ids.get(collection)
        if found is None:
            pytest.skip(f"{op.id}: no fixture creates an object of {collection} in the other "
                        "shop yet (add it to seed_other_shop)")
        ids[param] = found
    return ids


def names_a_thing(param: str, collection: str) -> bool:
    """Names shared by every shop (a response's name, a channel's) rather than ids of one
    shop's objects: the other shop's object is then not found by that name, but the demo
    shop's own (or its default) legitimately is."""
    return collection in ("/responses", "/channels") or not param.endswith("id")


SKIPPED_COLUMNS = ("last_used_at", "last_seen_at", "lease_expires_at", "lease_owner")


def tenant_tables() -> list[Table]:
    return [t for t in Base.metadata.sorted_tables if "tenant_id" in t.c]


async def snapshot(sessions: async_sessionmaker, tenant_id: str) -> dict[str, list[str]]:
    """Every row of the shop in every table, as text (timestamps of use left out)."""
    rows: dict[str, list[str]] = {}
    async with sessions() as session:
        for table in [*tenant_tables(), Base.metadata.tables[TenantRow.__tablename__]]:
            column = table.c.tenant_id if "tenant_id" in table.c else table.c.id
            kept = [c for c in table.c if c.name not in SKIPPED_COLUMNS]
            result = await session.execute(select(*kept).where(column == tenant_id))
            rows[table.name] = sorted(repr(tuple(r)) for r in result)
    return rows


# --- both matrices, one operation at a time ------------------------------------------------

async def credentials(admin: Admin) -> dict[str, dict[str, str]]:
    """Each credential a caller may hold, as its headers: "<role> key|session" or a bad one."""
    revoked = await issue_key(admin.sessions, admin.demo.id, "revoked owner", scope=OWNER)
    await revoke_key(admin.sessions, admin.demo.id, revoked.key.prefix)
    rest = await issue_key(admin.sessions, admin.demo.id, "rest channel", scope="rest")
    # A platform operator's browser session, written as a login writes it (a real login
    # hashes the password with argon2 twice: too slow for every operation).
    token, user_id, now = people.new_token(), str(uuid.uuid4()), utcnow()
    async with admin.sessions() as session:
        session.add(UserRow(id=user_id, email=f"operator-{token[:8].lower()}@example.com",
                            is_operator=True))
        await session.flush()
        session.add(AdminSessionRow(token_hash=people.token_hash(token), user_id=user_id,
                                    tenant_id=None, created_at=now,
                                    expires_at=now + timedelta(hours=1)))
        await session.commit()
    return {
        "no credentials": {},
        "malformed key": {"Authorization": "Bearer sb_live_not-a-key"},
        "basic auth": {"Authorization": "Basic b3duZXI6b3duZXI="},
        "revoked owner key": {"Authorization": f"Bearer {revoked.secret}"},
        "REST channel key": {"Authorization": f"Bearer {rest.secret}"},
        **{f"{role} key": admin.demo.auth(role) for role in (AGENT, DESIGNER, OWNER)},
        "operator session": {"Cookie": f"{COOKIE}={token}", CSRF_HEADER: people.csrf_token(
            admin.settings.csrf_key, token)},
    }


def refused_for_role(role: str, body: Any) -> bool:
    """The route machinery's 403 for a role outside the route's roles (admin_api/api.py), as
    opposed to a handler's 403 about the input (switching to a shop one has no role in)."""
    detail = body.get("detail") if isinstance(body, dict) else None
    return isinstance(detail, str) and detail.startswith(f"the {role} role may not")


@pytest.mark.asyncio
@by_id(PROTECTED)
async def test_each_caller_gets_in_or_is_refused_and_never_reaches_the_other_shop(
        admin: Admin, op: Operation) -> None:
    admin.settings.var_dir.mkdir(parents=True, exist_ok=True)  # as bootstrap leaves it
    other = await seed_other_shop(admin)
    ids = await path_ids(admin, other, op)
    by_id_params = [p for p in op.params if not names_a_thing(p, collection_of(op, p))]
    allowed = frozenset(op.spec["x-roles"])
    held = [(who, who.split()[0] if who.endswith((" key", " session")) else None, auth)
            for who, auth in (await credentials(admin)).items()]
    # Refusals first, allowed roles last (their calls may change the demo shop), the session
    # last of all (its answer may set a cookie).
    held.sort(key=lambda item: (item[1] in allowed, "Cookie" in item[2]))
    before = await snapshot(admin.sessions, admin.other.id)
    wrong: list[str] = []
    for who, role, auth in held:
        status, body, text = await send(admin, op, ids, auth, other.hints)
        answer = f"{status} {text[:200]}"
        if role is not None and role in allowed:
            if status == 401 or status >= 500 or (status == 403 and refused_for_role(role, body)):
                wrong.append(f"{who}: allowed, answered {answer}")
            elif by_id_params and role != OPERATOR and status != 404:
                wrong.append(f"{who}: the other shop's {', '.join(by_id_params)} {ids} answered "
                             f"{answer}, not 404")
        else:
            expected = 403 if role in (OWNER, DESIGNER, AGENT, OPERATOR) else 401
            if status != expected:
                wrong.append(f"{who}: expected {expected}, answered {answer}")
        if status >= 400 and not (isinstance(body, dict) and body.get("detail")):
            wrong.append(f"{who}: {status} without a JSON detail: {text[:200]}")
        if other.marker in text:
            wrong.append(f"{who}: the answer shows the other shop's data: {text[:300]}")
    if await snapshot(admin.sessions, admin.other.id) != before:
        wrong.append("the calls changed the other shop's rows")
    assert not wrong, f"{op.id} (roles {sorted(allowed)}):\n" + "\n".join(wrong)
