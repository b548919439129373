"""Shared pieces for the knowledge tests: one real embedder, real databases, real index files.

The model loads once per test session (about 3 s); everything else is built per test on a
fresh SQLite file, or on PostgreSQL when `make test` found it answering.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.db import create_engine, session_factory
from core.settings import async_database_url
from devtools.demo_shop import DEMO_KNOWLEDGE
from knowledge.embeddings import Embedder, get_embedder
from knowledge.index import IndexFiles
from knowledge.ingest import IngestReport, collect, ingest
from knowledge.retrieval import Retriever
from knowledge.tables import KnowledgeChunkRow, KnowledgeDocumentRow
from tests.databases import database_params, migrated_url


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The process-wide embedder the app uses (shared with the other knowledge tests)."""
    return get_embedder()


@dataclass
class Store:
    """One database and one index root, as the app would have them."""

    kind: str
    url: str  # plain DATABASE_URL form
    engine: AsyncEngine
    sessions: async_sessionmaker
    index_files: IndexFiles
    embedder: Embedder
    progress: list[tuple[int, int]] = field(default_factory=list)  # (done, total) of the last sync

    @property
    def retriever(self) -> Retriever:
        return Retriever(self.index_files, self.sessions, self.embedder)

    async def sync(self, tenant_id: str, *paths: Path) -> IngestReport:
        """Make the tenant's knowledge base exactly these files, recording the progress calls."""
        self.progress = []
        return await ingest(tenant_id, collect(paths), self.sessions, self.index_files,
                            self.embedder, lambda done, total: self.progress.append((done, total)))

    async def chunks(self, tenant_id: str) -> list[tuple[str, str]]:
        """(source, chunk text) for every chunk row of the tenant, in id order."""
        async with self.sessions() as session:
            rows = (await session.execute(
                select(KnowledgeDocumentRow.source, KnowledgeChunkRow.text)
                .join(KnowledgeDocumentRow,
                      KnowledgeChunkRow.document_id == KnowledgeDocumentRow.id)
                .where(KnowledgeChunkRow.tenant_id == tenant_id).order_by(KnowledgeChunkRow.id)
            )).all()
        return [(row.source, row.text) for row in rows]

    async def documents(self, tenant_id: str) -> dict[str, KnowledgeDocumentRow]:
        async with self.sessions() as session:
            rows = (await session.execute(select(KnowledgeDocumentRow).where(
                KnowledgeDocumentRow.tenant_id == tenant_id))).scalars()
            return {row.source: row for row in rows}


async def open_store(kind: str, tmp_path: Path, embedder: Embedder) -> Store:
    url = migrated_url(kind, tmp_path)
    engine = create_engine(async_database_url(url))
    return Store(kind, url, engine, session_factory(engine), IndexFiles(tmp_path / "knowledge"),
                 embedder)


@pytest_asyncio.fixture(params=database_params())
async def store(request: pytest.FixtureRequest, tmp_path: Path,
                embedder: Embedder) -> AsyncIterator[Store]:
    """A fresh, migrated database (SQLite, then PostgreSQL) with an empty index root."""
    opened = await open_store(request.param, tmp_path, embedder)
    try:
        yield opened
    finally:
        await opened.engine.dispose()


@pytest.fixture
def demo_docs(tmp_path: Path) -> Path:
    """A copy of the demo shop's documents that a test may edit."""
    return Path(shutil.copytree(DEMO_KNOWLEDGE, tmp_path / "docs"))


def pdf_bytes(lines: list[str], title: str | None = None) -> bytes:
    """A minimal, valid one-page PDF: Helvetica text, a correct xref table, an optional /Title."""
    escaped = [line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in lines]
    content = "BT /F1 12 Tf 72 720 Td 16 TL " + " ".join(f"({line}) '" for line in escaped) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
        " /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if title:
        objects.append(f"<< /Title ({title}) >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    info = f" /Info {len(objects)} 0 R" if title else ""
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return out
