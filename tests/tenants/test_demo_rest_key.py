"""`make run`'s bootstrap keeps a development REST key of the demo shop in var/dev.env."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import async_database_url
from devtools.bootstrap import demo_rest_key, env_value
from devtools.demo_shop import DEMO_TENANT_ID
from tenants.api_keys import ApiKeyVerifier, list_keys, revoke_key
from tests.databases import database_params, migrated_url, seeded_sessions


@pytest.mark.parametrize("kind", database_params())
@pytest.mark.asyncio
async def test_the_key_is_written_once_kept_and_replaced_when_revoked(kind: str,
                                                                       tmp_path: Path) -> None:
    url = migrated_url(kind, tmp_path)
    dev_env = tmp_path / "dev.env"
    dev_env.write_text("# secrets\nRASA_TOKEN=abc\n")
    async with seeded_sessions(url) as (_, sessions):
        await demo_rest_key(async_database_url(url), dev_env)
        key = env_value(dev_env, "DEMO_REST_KEY")
        assert key and (await ApiKeyVerifier(sessions).verify(key, DEMO_TENANT_ID))
        assert env_value(dev_env, "RASA_TOKEN") == "abc"
        assert dev_env.stat().st_mode & 0o077 == 0

        await demo_rest_key(async_database_url(url), dev_env)  # the next `make run`
        assert env_value(dev_env, "DEMO_REST_KEY") == key
        assert len(await list_keys(sessions, DEMO_TENANT_ID)) == 1

        await revoke_key(sessions, DEMO_TENANT_ID, key[:len("sb_live_") + 12])
        await demo_rest_key(async_database_url(url), dev_env)
        fresh = env_value(dev_env, "DEMO_REST_KEY")
        assert fresh and fresh != key
        assert dev_env.read_text().count("DEMO_REST_KEY=") == 1
        assert await ApiKeyVerifier(sessions).verify(fresh, DEMO_TENANT_ID)
