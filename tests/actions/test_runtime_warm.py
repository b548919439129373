"""The action server warms the knowledge runtime at start (actions/runtime.py warm_knowledge):
the first visitor's question then finds the embedder and the shop's index loaded, a question
that comes during the warm-up waits for the same load, and only the newest indexes load."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid

import numpy as np
import pytest

from actions.runtime import Runtime
from devtools.demo_shop import DEMO_TENANT_ID
from knowledge.embeddings import get_embedder
from knowledge.index import IndexFiles

pytestmark = pytest.mark.asyncio

SHIPPING = ["Shipping > Zones\nWe ship to Canada (Zone 4) for €19.95 in 4-7 business days.",
            "Returns\nYou can return unworn items within 30 days for a full refund."]
CANADA, RETURNS = 1, 2  # their chunk ids


def build_index(rt: Runtime, tenant_id: str, built_at: float | None = None) -> None:
    """A real index of two passages for `tenant_id`, embedded by the action server's embedder;
    `built_at` dates its CURRENT file (the warm-up takes the newest first)."""
    embedder = get_embedder(rt.settings.embed_precision)
    vectors = np.stack([embedder.encode_query(text) for text in SHIPPING])
    files = IndexFiles(rt.settings.knowledge_dir)
    ids = np.array([CANADA, RETURNS])
    files.build(tenant_id, ids, SHIPPING, ids, vectors)
    if built_at is not None:
        os.utime(files.tenant_dir(tenant_id) / "CURRENT", (built_at, built_at))


def messages(caplog: pytest.LogCaptureFixture, msg: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == msg]


def tenants(caplog: pytest.LogCaptureFixture) -> set[str]:
    """The shops whose index was loaded (read from disk) while `caplog` listened."""
    return {r.__dict__["tenant_id"] for r in messages(caplog, "index loaded")}


async def test_a_question_after_the_warm_up_loads_nothing(
        action_runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    other = str(uuid.uuid4())
    build_index(action_runtime, DEMO_TENANT_ID)
    build_index(action_runtime, other)
    caplog.set_level(logging.INFO)

    await action_runtime.warm_knowledge()

    loaded = tenants(caplog)
    assert loaded == {DEMO_TENANT_ID, other}
    [warmed] = messages(caplog, "knowledge warmed")
    assert warmed.__dict__["indexes"] == 2 and not warmed.__dict__["more_not_warmed"]
    caplog.clear()

    answers = await action_runtime.knowledge_answers()
    found = await asyncio.to_thread(answers.retriever.ranking, DEMO_TENANT_ID,
                                    "do you ship to canada?")

    assert found.fused[0][0] == CANADA
    assert not messages(caplog, "index loaded")
    assert not messages(caplog, "knowledge answers ready")


async def test_a_question_during_the_warm_up_waits_for_the_same_load(
        action_runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    build_index(action_runtime, DEMO_TENANT_ID)
    caplog.set_level(logging.INFO)

    warming = asyncio.create_task(action_runtime.warm_knowledge())
    await asyncio.sleep(0)  # the warm-up has started building the knowledge runtime
    answers, _ = await asyncio.gather(action_runtime.knowledge_answers(),
                                      action_runtime.knowledge_answers())
    found = await asyncio.to_thread(answers.retriever.ranking, DEMO_TENANT_ID,
                                    "how long do I have to return it?")
    await warming

    assert answers is action_runtime.knowledge
    assert found.fused[0][0] == RETURNS
    assert len(messages(caplog, "knowledge answers ready")) == 1
    assert len(messages(caplog, "index loaded")) == 1


async def test_only_the_most_recently_built_indexes_are_warmed(
        action_runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    old, newer, newest = (str(uuid.uuid4()) for _ in range(3))
    for n, tenant_id in enumerate((old, newer, newest)):
        build_index(action_runtime, tenant_id, built_at=1_800_000_000 + n)
    # A shop whose index folder lost its version (a half-deleted folder) is skipped, not fatal.
    broken = action_runtime.settings.knowledge_dir / str(uuid.uuid4())
    broken.mkdir()
    (broken / "CURRENT").write_text("20260101T000000-gone")
    os.utime(broken / "CURRENT", (1_700_000_000, 1_700_000_000))
    caplog.set_level(logging.INFO)

    await action_runtime.warm_knowledge(limit=2)

    loaded = tenants(caplog)
    assert loaded == {newer, newest}
    [warmed] = messages(caplog, "knowledge warmed")
    assert warmed.__dict__["indexes"] == 2 and warmed.__dict__["more_not_warmed"]

    caplog.clear()
    await action_runtime.warm_knowledge(limit=10)  # the old one too; the broken one is told
    assert tenants(caplog) == {old}
    assert messages(caplog, "index unreadable: run `python -m knowledge ingest` for this tenant")
    assert messages(caplog, "knowledge warmed")[0].__dict__["indexes"] == 3


async def test_no_index_yet_warms_the_runtime_alone(
        action_runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    await action_runtime.warm_knowledge()

    [warmed] = messages(caplog, "knowledge warmed")
    assert warmed.__dict__["indexes"] == 0
    assert "knowledge" in action_runtime.__dict__  # the next question builds nothing
