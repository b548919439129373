"""Manage a tenant's knowledge base from the command line.

    python -m knowledge ingest --tenant demo PATH...   make the knowledge base exactly these files
    python -m knowledge list --tenant demo             what is in it
    python -m knowledge search --tenant demo "do you ship to canada?"   what retrieval finds

Formats: Markdown, HTML, PDF, plain text, and CSV (FAQ with question/answer columns, or a
catalogue with one row a product). `ingest` is safe to re-run: unchanged files are skipped,
changed ones replaced, and documents no longer among PATH... are removed. Documents uploaded
over the admin API are kept (and win over a file of the same name): they are the designers'.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from tqdm import tqdm

from core import logs
from core.db import create_engine, session_factory
from core.settings import ProcessSettings
from knowledge.embeddings import get_embedder
from knowledge.index import IndexFiles
from knowledge.ingest import IngestReport, collect, ingest
from knowledge.library import Uploads
from knowledge.retrieval import Retriever
from knowledge.tables import KnowledgeDocumentRow
from tenants.models import TenantRow


@asynccontextmanager
async def tenant_storage(
    settings: ProcessSettings, key: str
) -> AsyncIterator[tuple[async_sessionmaker, str]]:
    """Sessions on the configured database and the id of the tenant named by slug or id."""
    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        async with sessions() as session:
            row = (await session.execute(
                select(TenantRow).where((TenantRow.slug == key) | (TenantRow.id == key))
            )).scalar_one_or_none()
        if row is None:
            raise SystemExit(f"no tenant {key!r} (python -m tenants list shows them)")
        yield sessions, row.id
    finally:
        await engine.dispose()


def print_report(report: IngestReport) -> None:
    for label, names in (("added", report.added), ("updated", report.updated),
                         ("unchanged", report.unchanged), ("removed", report.removed)):
        print(f"{label:>10}: {len(names):3d}  {', '.join(names)}")
    for source, error in report.failed.items():
        print(f"{'failed':>10}: {source}: {error}")
    print(f"embedded {report.chunks_embedded} chunks; the index holds {report.chunks_total} chunks"
          + (f" ({report.manifest.kind}, version {report.manifest.version})"
             if report.manifest else ""))


async def run_ingest(settings: ProcessSettings, tenant: str, paths: list[Path]) -> int:
    async with tenant_storage(settings, tenant) as (sessions, tenant_id):
        files = Uploads.under(settings.knowledge_dir).along_with(tenant_id, collect(paths))
        bar: tqdm | None = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, unit="window", desc="embedding", file=sys.stderr)
            bar.update(done - bar.n)

        report = await ingest(tenant_id, files, sessions, IndexFiles(settings.knowledge_dir),
                              get_embedder(precision=settings.embed_precision), progress)
        if bar is not None:
            bar.close()
    print_report(report)
    return 1 if report.failed else 0


async def run_list(settings: ProcessSettings, tenant: str) -> int:
    async with tenant_storage(settings, tenant) as (sessions, tenant_id), sessions() as session:
        rows = (await session.execute(
            select(KnowledgeDocumentRow)
            .where(KnowledgeDocumentRow.tenant_id == tenant_id)
            .order_by(KnowledgeDocumentRow.source)
        )).scalars()
        for row in rows:
            print(f"{row.source:<30} {row.chunk_count:4d} chunks  {row.title}  {row.url or ''}")
    return 0


async def run_search(settings: ProcessSettings, tenant: str, question: str) -> int:
    async with tenant_storage(settings, tenant) as (sessions, tenant_id):
        retriever = Retriever(IndexFiles(settings.knowledge_dir), sessions,
                              get_embedder(settings.embed_precision))
        result = await retriever.search(tenant_id, question)
    print(f"answerable: {result.answerable} (best cosine {result.best_cosine:.2f})")
    for p in result.passages:
        cosine = f"{p.cosine:.2f}" if p.cosine is not None else "  - "
        print(f"  {p.score:.4f} cos {cosine}  {p.source}  {p.heading}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m knowledge",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p_ingest = commands.add_parser("ingest", help="make the knowledge base exactly these files")
    p_ingest.add_argument("--tenant", required=True, help="tenant slug or id")
    p_ingest.add_argument("paths", nargs="+", type=Path)
    p_list = commands.add_parser("list", help="documents in the knowledge base")
    p_list.add_argument("--tenant", required=True)
    p_search = commands.add_parser("search", help="what retrieval finds for a question")
    p_search.add_argument("--tenant", required=True)
    p_search.add_argument("question")
    args = parser.parse_args(argv)
    settings = ProcessSettings.from_env()  # storage only: no secrets needed
    logs.configure(settings.log_level)
    if args.command == "ingest":
        return asyncio.run(run_ingest(settings, args.tenant, args.paths))
    if args.command == "list":
        return asyncio.run(run_list(settings, args.tenant))
    return asyncio.run(run_search(settings, args.tenant, args.question))


if __name__ == "__main__":
    sys.exit(main())
