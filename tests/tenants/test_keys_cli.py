"""An operator creates, lists and revokes a shop's REST API keys from the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.db import create_engine, session_factory
from core.settings import async_database_url
from devtools.demo_shop import DEMO_TENANT_ID
from tenants.__main__ import main
from tenants.api_keys import ApiKeyVerifier, InvalidApiKey
from tests.databases import database_params, migrated_url, seeded_sessions


async def _seed(url: str) -> None:
    async with seeded_sessions(url):
        pass


async def _verifies(url: str, token: str) -> bool:
    engine = create_engine(async_database_url(url))
    try:
        await ApiKeyVerifier(session_factory(engine)).verify(token, DEMO_TENANT_ID)
        return True
    except InvalidApiKey:
        return False
    finally:
        await engine.dispose()


@pytest.mark.parametrize("kind", database_params())
def test_a_key_is_created_shown_once_listed_and_revoked(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = migrated_url(kind, tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    for secret in ("RASA_TOKEN", "SWITCHBOARD_CREDENTIALS_KEY"):  # keys need the database only
        monkeypatch.delenv(secret, raising=False)
    asyncio.run(_seed(url))

    main(["keys", "create", "--tenant", "demo", "--name", "order system"])
    token, note = capsys.readouterr().out.splitlines()
    assert token.startswith("sb_live_") and "shown once" in note
    assert asyncio.run(_verifies(url, token))

    main(["keys", "list", "--tenant", "demo"])
    [listed] = capsys.readouterr().out.splitlines()
    prefix = token[:len("sb_live_") + 12]
    assert listed.startswith(prefix) and "order system" in listed and token not in listed
    assert "REVOKED" not in listed and "used 20" in listed  # the check above used it

    main(["keys", "revoke", "--tenant", "demo", prefix])
    assert capsys.readouterr().out.startswith(f"revoked {prefix}")
    assert not asyncio.run(_verifies(url, token))
    main(["keys", "list", "--tenant", "demo"])
    assert "REVOKED" in capsys.readouterr().out

    with pytest.raises(SystemExit, match="no key"):
        main(["keys", "revoke", "--tenant", "demo", "sb_live_000000000000"])
    with pytest.raises(SystemExit, match="no tenant called 'nobody'"):
        main(["keys", "list", "--tenant", "nobody"])
