"""API keys: shown once, stored hashed, found by prefix, revocable, checked fast.

On a real database (SQLite always, PostgreSQL when it answers) with the demo shop seeded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import delete, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from devtools.demo_shop import DEMO_TENANT_ID
from tenants import TenantRow
from tenants.api_keys import (
    ApiKeyRow,
    ApiKeyVerifier,
    InvalidApiKey,
    UnknownApiKey,
    hash_key,
    issue_key,
    list_keys,
    prefix_of,
    revoke_key,
)
from tests.databases import database_params, migrated_url, seeded_sessions

OTHER = "00000000-0000-4000-8000-0000000000aa"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Queries:
    """Counts the SELECTs on api_keys (how often a check reaches the database)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "api_keys" in statement:
            self.count += 1


@pytest_asyncio.fixture(params=database_params())
async def db(request: pytest.FixtureRequest,
             tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, async_sessionmaker]]:
    url = migrated_url(request.param, tmp_path)
    async with seeded_sessions(url) as (engine, sessions):
        async with sessions() as session:
            session.add(TenantRow(id=OTHER, slug="keys-other", name="Other",
                                  return_window_days=30, order_backend="demo"))
            await session.commit()
        yield engine, sessions
        async with sessions() as session:
            await session.execute(delete(ApiKeyRow))
            await session.execute(delete(TenantRow).where(TenantRow.id == OTHER))
            await session.commit()


@pytest.mark.asyncio
async def test_the_secret_is_shown_once_and_only_its_hash_is_stored(db: tuple) -> None:
    _, sessions = db
    issued = await issue_key(sessions, DEMO_TENANT_ID, "orders server")
    assert issued.secret.startswith(f"sb_live_{issued.key.prefix}_")
    assert len(issued.secret) == 64 and issued.secret not in repr(issued)
    async with sessions() as session:
        row = (await session.execute(select(ApiKeyRow))).scalar_one()
    assert row.secret_hash == hash_key(issued.secret) and issued.secret not in row.secret_hash
    assert row.secret_hash.startswith("sha256:") and len(row.secret_hash) <= 128
    assert (row.prefix, row.name, row.scope) == (issued.key.prefix, "orders server", "rest")
    assert prefix_of(issued.secret) == issued.key.prefix
    [listed] = await list_keys(sessions, DEMO_TENANT_ID)
    assert listed == issued.key and listed.label == f"sb_live_{issued.key.prefix}…"
    assert await list_keys(sessions, OTHER) == []


@pytest.mark.asyncio
async def test_a_key_opens_only_its_own_shop_and_scope(db: tuple) -> None:
    _, sessions = db
    issued = await issue_key(sessions, DEMO_TENANT_ID, "k")
    verifier = ApiKeyVerifier(sessions)
    assert (await verifier.verify(issued.secret, DEMO_TENANT_ID)).id == issued.key.id
    for token, tenant, scope in [
        (issued.secret, OTHER, "rest"),
        (issued.secret, DEMO_TENANT_ID, "admin"),
        (issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B"), DEMO_TENANT_ID, "rest"),
        (f"sb_live_{'0' * 12}_{'x' * 43}", DEMO_TENANT_ID, "rest"),
        ("sb_live_nonsense", DEMO_TENANT_ID, "rest"),
        ("", DEMO_TENANT_ID, "rest"),
        (None, DEMO_TENANT_ID, "rest"),
    ]:
        with pytest.raises(InvalidApiKey):
            await verifier.verify(token, tenant, scope)


@pytest.mark.asyncio
async def test_checks_are_served_from_memory_briefly_and_revocation_wins_soon(db: tuple) -> None:
    engine, sessions = db
    issued = await issue_key(sessions, DEMO_TENANT_ID, "k")
    clock = Clock()
    verifier = ApiKeyVerifier(sessions, cache_seconds=5.0, clock=clock)
    queries = Queries(engine)
    for _ in range(50):
        await verifier.verify(issued.secret, DEMO_TENANT_ID)
    assert queries.count == 1
    # Revoked elsewhere (the CLI is another process): this process notices within 5 s.
    await revoke_key(sessions, DEMO_TENANT_ID, issued.key.label)
    clock.now += 4.9
    await verifier.verify(issued.secret, DEMO_TENANT_ID)
    clock.now += 0.2
    with pytest.raises(InvalidApiKey):
        await verifier.verify(issued.secret, DEMO_TENANT_ID)
    with pytest.raises(InvalidApiKey):  # revoked keys are not cached as good again
        await verifier.verify(issued.secret, DEMO_TENANT_ID)


@pytest.mark.asyncio
async def test_a_process_that_revokes_forgets_at_once(db: tuple) -> None:
    _, sessions = db
    issued = await issue_key(sessions, DEMO_TENANT_ID, "k")
    verifier = ApiKeyVerifier(sessions, cache_seconds=60.0)
    await verifier.verify(issued.secret, DEMO_TENANT_ID)
    revoked = await revoke_key(sessions, DEMO_TENANT_ID, issued.key.prefix)
    verifier.forget(revoked.prefix)
    with pytest.raises(InvalidApiKey):
        await verifier.verify(issued.secret, DEMO_TENANT_ID)


@pytest.mark.asyncio
async def test_revoking_needs_the_shops_own_key_and_keeps_the_first_time(db: tuple) -> None:
    _, sessions = db
    issued = await issue_key(sessions, DEMO_TENANT_ID, "k")
    with pytest.raises(UnknownApiKey):
        await revoke_key(sessions, OTHER, issued.key.prefix)
    with pytest.raises(UnknownApiKey):
        await revoke_key(sessions, DEMO_TENANT_ID, "not-a-prefix")
    first = await revoke_key(sessions, DEMO_TENANT_ID, f"sb_live_{issued.key.prefix}")
    again = await revoke_key(sessions, DEMO_TENANT_ID, issued.key.prefix)
    assert first.revoked_at is not None and again.revoked_at == first.revoked_at
    [listed] = await list_keys(sessions, DEMO_TENANT_ID)
    assert not listed.active


@pytest.mark.asyncio
async def test_the_last_use_is_recorded_without_a_write_per_request(db: tuple) -> None:
    _, sessions = db
    issued = await issue_key(sessions, DEMO_TENANT_ID, "k")
    assert issued.key.last_used_at is None
    clock = Clock()
    verifier = ApiKeyVerifier(sessions, cache_seconds=5.0, clock=clock)
    await verifier.verify(issued.secret, DEMO_TENANT_ID)
    [used] = await list_keys(sessions, DEMO_TENANT_ID)
    assert used.last_used_at is not None
    clock.now += 10  # read again, but within the minute: no new write
    await verifier.verify(issued.secret, DEMO_TENANT_ID)
    [same] = await list_keys(sessions, DEMO_TENANT_ID)
    assert same.last_used_at == used.last_used_at


@pytest.mark.asyncio
async def test_concurrent_checks_of_a_cold_key_share_one_query(db: tuple) -> None:
    import asyncio

    engine, sessions = db
    issued = await issue_key(sessions, DEMO_TENANT_ID, "k")
    verifier = ApiKeyVerifier(sessions)
    queries = Queries(engine)
    keys = await asyncio.gather(*(verifier.verify(issued.secret, DEMO_TENANT_ID)
                                  for _ in range(20)))
    assert {k.id for k in keys} == {issued.key.id} and queries.count == 1


@pytest.mark.asyncio
async def test_unknown_scopes_are_refused(db: tuple) -> None:
    _, sessions = db
    with pytest.raises(ValueError):
        await issue_key(sessions, DEMO_TENANT_ID, "k", scope="everything")
