"""An operator sets a shop's monthly LLM token budget from the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from devtools.demo_shop import DEMO_TENANT_ID
from tenants.__main__ import main
from tenants.models import TenantRow
from tests.databases import database_params, migrated_url, seeded_sessions


async def _budget(url: str) -> int | None:
    async with seeded_sessions(url) as (_, sessions), sessions() as session:
        row = (await session.execute(
            select(TenantRow).where(TenantRow.id == DEMO_TENANT_ID))).scalar_one()
        return row.llm_monthly_token_budget


@pytest.mark.parametrize("kind", database_params())
def test_budget_is_set_and_lifted(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    url = migrated_url(kind, tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    assert asyncio.run(_budget(url)) is None  # seeds the demo shop: no limit

    main(["budget", "demo", "250000"])
    assert asyncio.run(_budget(url)) == 250000
    assert "250000 LLM tokens a month" in capsys.readouterr().out

    main(["budget", "demo", "none"])
    assert asyncio.run(_budget(url)) is None

    with pytest.raises(SystemExit, match="no tenant called 'nobody'"):
        main(["budget", "nobody", "10"])
    with pytest.raises(SystemExit):  # argparse: not a number of tokens
        main(["budget", "demo", "-5"])
