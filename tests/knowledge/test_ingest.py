"""Ingestion makes a tenant's knowledge base exactly the files given, and is safe to re-run.

What a shop owner would notice: running the import again costs nothing; an edited page is
answered from its new text only; a deleted page is never quoted again; one broken file is
reported by name and does not take the previous good version (or the rest) down with it.
Runs on SQLite and on PostgreSQL, with the real embedder and real index files.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.settings import ROOT, async_database_url
from devtools.bootstrap import seed
from knowledge.chunking import windows
from knowledge.embeddings import Embedder
from knowledge.tables import KnowledgeChunkRow, KnowledgeDocumentRow
from tests.databases import migrated_url
from tests.knowledge.conftest import DEMO_KNOWLEDGE, Store, open_store, pdf_bytes

TENANT = "tenant-ingest"
DEMO_FILES = sorted(p.name for p in DEMO_KNOWLEDGE.iterdir())

OLD_CARRIERS = "You can't choose the carrier yourself."
NEW_CARRIERS = ("Since March every parcel leaves Hamburg with GoGreen Cargo, our climate-neutral "
                "courier partner, and you can pick your delivery day at checkout.")


async def assert_index_matches_database(store: Store, tenant_id: str,
                                        reembed: set[str] | None = None) -> None:
    """The index holds exactly one vector per window of every current chunk, embedded from
    that chunk's current text: nothing stale, nothing missing. Vectors are compared with a
    fresh embedding for the documents in `reembed` (all when None)."""
    async with store.sessions() as session:
        rows = (await session.execute(
            select(KnowledgeChunkRow.id, KnowledgeChunkRow.text, KnowledgeDocumentRow.source)
            .join(KnowledgeDocumentRow, KnowledgeChunkRow.document_id == KnowledgeDocumentRow.id)
            .where(KnowledgeChunkRow.tenant_id == tenant_id).order_by(KnowledgeChunkRow.id)
        )).all()
    index = store.index_files.load(tenant_id)
    assert index is not None and len(index) == len(rows)
    owners, vectors = store.index_files.vectors(tenant_id)
    counts = dict(zip(*np.unique(owners, return_counts=True), strict=True))
    assert {int(k): int(v) for k, v in counts.items()} == {
        row.id: len(windows(row.text)) for row in rows}
    # Each stored vector, in window order per chunk, is its window's embedding of today's text.
    checked = [row for row in rows if reembed is None or row.source in reembed]
    texts = [text for row in checked for text in windows(row.text)]
    if texts:
        stored = np.concatenate([vectors[owners == row.id] for row in checked])
        cosines = np.sum(stored * store.embedder.encode(texts), axis=1)
        assert cosines.min() > 0.99, [texts[i] for i in np.flatnonzero(cosines <= 0.99)][:3]


async def synced_demo(store: Store, docs: Path) -> None:
    report = await store.sync(TENANT, docs)
    assert report.added == DEMO_FILES and not report.failed


# -- first sync and re-runs ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_first_sync_adds_every_document_and_a_rerun_changes_nothing(
        store: Store, demo_docs: Path) -> None:
    first = await store.sync(TENANT, demo_docs)

    assert first.added == DEMO_FILES
    assert (first.updated, first.unchanged, first.removed, first.failed) == ([], [], [], {})
    documents = await store.documents(TENANT)
    assert sorted(documents) == DEMO_FILES
    chunk_count = sum(d.chunk_count for d in documents.values())
    assert first.chunks_total == first.chunks_embedded == chunk_count
    assert documents["shipping.md"].url == "https://demo-outfitters.example/pages/shipping"
    windows_total = sum(len(windows(text)) for _, text in await store.chunks(TENANT))
    assert store.progress[-1] == (windows_total, windows_total)  # the bar reaches the end
    await assert_index_matches_database(store, TENANT, reembed={"shipping.md", "products.csv"})

    again = await store.sync(TENANT, demo_docs)

    assert again.unchanged == DEMO_FILES
    assert (again.added, again.updated, again.removed, again.failed) == ([], [], [], {})
    assert again.chunks_embedded == 0 and store.progress == []  # nothing was embedded
    assert again.chunks_total == first.chunks_total
    assert first.manifest is not None  # the index (and the answer cache keyed by it) is kept
    assert store.index_files.current_version(TENANT) == first.manifest.version
    await assert_index_matches_database(store, TENANT, reembed={"payments.html"})


@pytest.mark.asyncio
async def test_an_index_from_before_headings_were_stored_gets_them_without_embedding(
        store: Store, tmp_path: Path) -> None:
    docs = tmp_path / "small"
    docs.mkdir()
    (docs / "pay.md").write_text("# Payment methods\n\nWe take cards and PayPal.\n\n"
                                 "## PayPal\n\nPayPal opens its own window to confirm.\n")
    first = await store.sync(TENANT, docs)
    assert first.manifest is not None
    (store.index_files.tenant_dir(TENANT) / first.manifest.version / "headings.json").unlink()

    again = await store.sync(TENANT, docs)

    assert again.unchanged == ["pay.md"] and again.chunks_embedded == 0  # the vectors are kept
    assert again.manifest is not None and again.manifest.version != first.manifest.version
    index = store.index_files.load(TENANT)
    assert index is not None
    assert sorted(index.headings.values()) == ["Payment methods", "Payment methods > PayPal"]


@pytest.mark.asyncio
async def test_edited_document_is_replaced_and_only_it_is_embedded(store: Store,
                                                                   demo_docs: Path) -> None:
    await synced_demo(store, demo_docs)
    shipping = demo_docs / "shipping.md"
    assert OLD_CARRIERS in shipping.read_text()
    shipping.write_text(shipping.read_text().replace(OLD_CARRIERS, NEW_CARRIERS))

    report = await store.sync(TENANT, demo_docs)

    assert report.updated == ["shipping.md"]
    assert report.unchanged == [name for name in DEMO_FILES if name != "shipping.md"]
    assert (report.added, report.removed, report.failed) == ([], [], {})
    new_chunks = [text for source, text in await store.chunks(TENANT) if source == "shipping.md"]
    stored = (await store.documents(TENANT))["shipping.md"]
    assert report.chunks_embedded == len(new_chunks) == stored.chunk_count
    shipping_windows = sum(len(windows(text)) for text in new_chunks)
    assert store.progress[-1] == (shipping_windows, shipping_windows)  # only shipping.md's windows
    all_text = "\n".join(text for _, text in await store.chunks(TENANT))
    assert NEW_CARRIERS in all_text and OLD_CARRIERS not in all_text
    await assert_index_matches_database(store, TENANT, reembed={"shipping.md"})

    for question in ("which carrier delivers my parcel?", "do you deliver with GoGreen Cargo?"):
        found = await store.retriever.search(TENANT, question)
        assert found.answerable and NEW_CARRIERS in found.passages[0].text, question
    stale = await store.retriever.search(TENANT, OLD_CARRIERS)
    assert all(OLD_CARRIERS not in p.text for p in stale.passages)


@pytest.mark.asyncio
async def test_deleted_document_is_gone_from_database_and_search(store: Store,
                                                                 demo_docs: Path) -> None:
    await synced_demo(store, demo_docs)
    (demo_docs / "payments.html").unlink()

    report = await store.sync(TENANT, demo_docs)

    assert report.removed == ["payments.html"]
    assert report.unchanged == [name for name in DEMO_FILES if name != "payments.html"]
    assert report.chunks_embedded == 0
    assert "payments.html" not in await store.documents(TENANT)
    assert all(source != "payments.html" for source, _ in await store.chunks(TENANT))
    await assert_index_matches_database(store, TENANT, reembed=set())
    for question in ("can I pay with PayPal?", "PayPal is available in every country we ship to.",
                     "do you take Klarna pay in 3?"):
        result = await store.retriever.search(TENANT, question)
        assert all(p.source != "payments.html" for p in result.passages), question


# -- broken files ----------------------------------------------------------------------------

SMALL_KB = {
    "faq.csv": (b"question,answer\n"
                b"Do you sell gift cards?,Yes: digital gift cards from 25 to 300 euros.\n"),
    "notes.md": (b"# Store notes\n\n## Parking\n"
                 b"Customers park for free in the courtyard behind the Altona store.\n"),
    "terms.pdf": pdf_bytes(["Gift card terms",
                            "Gift cards are valid for three years from purchase."]),
}
GOOD_TEXT = {
    "faq.csv": ("do you have gift cards", "digital gift cards from 25 to 300 euros"),
    "notes.md": ("where can I park?", "park for free in the courtyard"),
    "terms.pdf": ("how long is a gift card valid", "valid for three years from purchase"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize(("name", "broken"), [
    pytest.param("faq.csv", b"", id="empty-csv"),
    pytest.param("notes.md", b"", id="empty-markdown"),
    pytest.param("faq.csv", b"\x00\x01\x02\x03", id="binary-csv"),
    pytest.param("terms.pdf", b"", id="empty-pdf"),
    pytest.param("terms.pdf", b"%PDF-1.4\n1 0 obj garbage", id="corrupt-pdf"),
])
async def test_broken_file_is_reported_and_its_previous_version_stays(
    store: Store, tmp_path: Path, name: str, broken: bytes,
) -> None:
    docs = tmp_path / "small"
    docs.mkdir()
    for file, data in SMALL_KB.items():
        (docs / file).write_bytes(data)
    assert (await store.sync(TENANT, docs)).added == sorted(SMALL_KB)
    before = await store.documents(TENANT)
    (docs / name).write_bytes(broken)
    (docs / "new-but-empty.md").write_bytes(b"")  # broken and never seen before

    report = await store.sync(TENANT, docs)

    assert sorted(report.failed) == sorted([name, "new-but-empty.md"])
    assert (report.added, report.updated, report.removed) == ([], [], [])
    assert report.unchanged == sorted(set(SMALL_KB) - {name})
    after = await store.documents(TENANT)
    assert sorted(after) == sorted(SMALL_KB)  # the old version is kept, the new file not added
    assert after[name].content_hash == before[name].content_hash
    await assert_index_matches_database(store, TENANT)
    question, text = GOOD_TEXT[name]
    result = await store.retriever.search(TENANT, question)
    assert result.answerable and text in result.passages[0].text


# -- index and database ids ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_replacing_the_newest_document_leaves_no_stale_vectors(
    store: Store, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    """The last document ingested holds the highest chunk ids; replacing it must drop its old
    vectors, or the old text keeps matching (and is answered with) the new chunk."""
    docs = tmp_path / "two"
    docs.mkdir()
    (docs / "a.md").write_text("# Apples\n\nOur apples are crisp and red.\n")
    (docs / "b.md").write_text("# Bananas\n\nOur bananas are ripe and yellow.\n")
    await store.sync(TENANT, docs)
    (docs / "b.md").write_text("# Blueberries\n\nOur blueberries are small and blue.\n")

    report = await store.sync(TENANT, docs)

    assert report.updated == ["b.md"]
    await assert_index_matches_database(store, TENANT)


@pytest.mark.asyncio
async def test_a_new_database_never_inherits_vectors_from_the_old_index(
    store: Store, tmp_path: Path, embedder: Embedder,
) -> None:
    """Pointing a deployment at a fresh database (ids start again at 1) with the same var/
    folder: the old index's vectors belong to other texts and must not be reused."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "a.md").write_text("# Apples\n\nOur apples are crisp and red.\n")
    (second / "b.md").write_text("# Bananas\n\nOur bananas are ripe and yellow.\n")
    await store.sync(TENANT, first)
    (tmp_path / "new-db").mkdir()
    fresh_db = await open_store("sqlite", tmp_path / "new-db", embedder)
    fresh_db.index_files = store.index_files  # same index folder, new database
    try:
        report = await fresh_db.sync(TENANT, second)
        assert report.added == ["b.md"]
        await assert_index_matches_database(fresh_db, TENANT)
    finally:
        await fresh_db.engine.dispose()


# -- command line ----------------------------------------------------------------------------


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "knowledge", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def count(stdout: str, label: str) -> int:
    match = re.search(rf"^\s*{label}:\s+(\d+)", stdout, re.M)
    assert match, stdout
    return int(match.group(1))


def test_cli_ingest_prints_what_it_did_with_a_progress_bar(tmp_path: Path, demo_docs: Path) -> None:
    url = migrated_url("sqlite", tmp_path)
    # The demo tenant, as `python -m devtools.bootstrap` makes it.
    asyncio.run(seed(async_database_url(url)))
    env = dict(os.environ, SWITCHBOARD_VAR_DIR=str(tmp_path / "var"), DATABASE_URL=url)

    first = run_cli(env, "ingest", "--tenant", "demo", str(demo_docs))

    assert first.returncode == 0, first.stderr
    assert (count(first.stdout, "added"), count(first.stdout, "unchanged")) == (len(DEMO_FILES), 0)
    assert re.search(r"embedding: 100%\|.*\| (\d+)/\1 ", first.stderr), first.stderr[-2000:]
    assert (tmp_path / "var" / "knowledge").is_dir()  # the index lives under the var dir

    again = run_cli(env, "ingest", "--tenant", "demo", str(demo_docs))

    assert again.returncode == 0, again.stderr
    assert (count(again.stdout, "added"), count(again.stdout, "unchanged")) == (0, len(DEMO_FILES))
    assert "embedded 0 chunks" in again.stdout
    assert "embedding:" not in again.stderr  # nothing to embed, no bar

    listed = run_cli(env, "list", "--tenant", "demo")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == DEMO_FILES


def test_cli_refuses_an_unknown_tenant(tmp_path: Path) -> None:
    url = migrated_url("sqlite", tmp_path)
    env = dict(os.environ, SWITCHBOARD_VAR_DIR=str(tmp_path / "var"), DATABASE_URL=url)

    result = run_cli(env, "list", "--tenant", "nobody")

    assert result.returncode != 0
    assert "no tenant 'nobody'" in result.stderr
