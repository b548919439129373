"""Bring a tenant's knowledge base in line with a set of files: safe to run again and again.

The files given are the tenant's whole knowledge base. A document whose bytes are unchanged
is skipped (its vectors are reused), a changed one has its chunks replaced, a new one is
added, and a document ingested before but not among the files now is removed. A file that
cannot be read is reported and its previous version, if any, is kept: nothing is lost
because one PDF is broken.

Order of work: parse and embed first (no writes), then one database transaction, then the
index build. If the build fails, the next run finds vectors missing and embeds them again.
A run that changes nothing keeps the index and its version (cached answers stay valid).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.db import utcnow
from knowledge.chunking import Chunk, chunk_document, windows
from knowledge.embeddings import Embedder
from knowledge.index import IndexFiles, Manifest, digests
from knowledge.loaders import SUPPORTED, Document, UnsupportedDocument, load
from knowledge.tables import KnowledgeChunkRow, KnowledgeDocumentRow

log = logging.getLogger(__name__)

# Bump when loaders or chunking change, so the next ingestion re-chunks every document.
# 2: windows for the dense index, -ing/-ed in lexical tokens; 3: HTML blocks and tables;
# 4: lexical tokens lose a silent final e and read "-ie" as "-y".
PIPELINE_VERSION = "4"

Progress = Callable[[int, int], None]  # (done, total) chunks embedded


@dataclass(frozen=True)
class SourceFile:
    source: str  # the name the document is cited and tracked by
    data: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(PIPELINE_VERSION.encode() + b"\0" + self.data).hexdigest()


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    chunks_embedded: int = 0
    chunks_total: int = 0
    manifest: Manifest | None = None


def collect(paths: Iterable[Path]) -> list[SourceFile]:
    """Files under the given paths, named relative to the folder given (or by file name)."""
    found: dict[str, SourceFile] = {}
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in SUPPORTED)
            named = [(p.relative_to(path).as_posix(), p) for p in files]
        elif path.is_file():
            named = [(path.name, path)]
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
        for source, file in named:
            if source in found:
                raise ValueError(f"two files would both be called {source!r}; "
                                 "ingest them from one folder")
            found[source] = SourceFile(source, file.read_bytes())
    return list(found.values())


async def ingest(
    tenant_id: str,
    files: Sequence[SourceFile],
    sessions: async_sessionmaker,
    index_files: IndexFiles,
    embedder: Embedder,
    progress: Progress | None = None,
    *,
    prune: bool = True,
    drop: Collection[str] = (),
    rebuild: bool = False,
) -> IngestReport:
    """Bring the tenant's knowledge base in line with `files`.

    The CLI passes the whole knowledge base (`prune`: documents not among the files go). The
    admin API changes one document at a time: `prune=False` keeps the others, `drop` names
    documents to remove, and `rebuild` re-embeds every chunk into a fresh index (re-indexing
    after the embedding model or the index layout changed, or the index folder was lost)."""
    report = IngestReport()
    async with sessions() as session:
        existing = {
            row.source: row
            for row in (await session.execute(
                select(KnowledgeDocumentRow).where(KnowledgeDocumentRow.tenant_id == tenant_id)
            )).scalars()
        }

    parsed: dict[str, tuple[SourceFile, Document, list[Chunk]]] = {}
    for file in files:
        old = existing.get(file.source)
        if old is not None and old.content_hash == file.digest:
            report.unchanged.append(file.source)
            continue
        try:
            document = load(file.source, file.data)
        except (UnsupportedDocument, ValueError) as exc:
            report.failed[file.source] = str(exc)
            log.warning("document skipped", extra={"tenant_id": tenant_id, "source": file.source,
                                                   "error": str(exc)})
            continue
        parsed[file.source] = (file, document, chunk_document(document))
        (report.updated if old is not None else report.added).append(file.source)
    keep = {f.source for f in files}
    report.removed = sorted(s for s in existing
                            if (prune and s not in keep) or (s in drop and s not in keep))

    new_chunks = [c for _, _, chunks in parsed.values() for c in chunks]
    new_windows = [windows(c.text) for c in new_chunks]
    flat = [w for group in new_windows for w in group]
    new_vectors = await asyncio.to_thread(_embed, embedder, flat, progress)
    report.chunks_embedded = len(new_chunks)

    async with sessions() as session, session.begin():
        stale = [existing[s].id for s in (*parsed, *report.removed) if s in existing]
        if stale:
            await session.execute(delete(KnowledgeChunkRow).where(
                KnowledgeChunkRow.tenant_id == tenant_id, KnowledgeChunkRow.document_id.in_(stale)))
        if report.removed:
            await session.execute(delete(KnowledgeDocumentRow).where(
                KnowledgeDocumentRow.tenant_id == tenant_id,
                KnowledgeDocumentRow.source.in_(report.removed)))
        new_rows: list[KnowledgeChunkRow] = []
        for source, (file, document, chunks) in parsed.items():
            row = existing.get(source)
            if row is None:
                row = KnowledgeDocumentRow(tenant_id=tenant_id, source=source)
            else:
                row = await session.merge(row)
            row.title, row.url, row.content_hash = document.title[:300], document.url, file.digest
            row.chunk_count, row.updated_at = len(chunks), utcnow()
            row.size = len(file.data)  # the Knowledge tab's Size, however it was ingested
            session.add(row)
            await session.flush()
            for chunk in chunks:
                new_rows.append(KnowledgeChunkRow(tenant_id=tenant_id, document_id=row.id,
                                                  ordinal=chunk.ordinal, heading=chunk.heading,
                                                  text=chunk.text, url=chunk.url))
        session.add_all(new_rows)
        unchanged = set(report.unchanged)
        for file in files:  # unchanged, but ingested before sizes were kept
            old = existing.get(file.source)
            if file.source in unchanged and old is not None and old.size is None:
                await session.execute(update(KnowledgeDocumentRow).where(
                    KnowledgeDocumentRow.id == old.id).values(size=len(file.data)))
        await session.flush()
        new_owners = np.array([row.id for row, group in zip(new_rows, new_windows, strict=True)
                               for _ in group],
                              dtype=np.int64)

    chunk_ids, texts = await _current_chunks(tenant_id, sessions)
    if (parsed or report.removed or rebuild
            or not index_files.is_current(tenant_id, chunk_ids, digests(texts))):
        report.manifest = await _rebuild(tenant_id, index_files, embedder, chunk_ids, texts,
                                         new_owners, new_vectors, report,
                                         reuse=not rebuild, progress=progress)
    report.chunks_total = len(chunk_ids)
    return report


def _embed(embedder: Embedder, texts: list[str], progress: Progress | None) -> np.ndarray:
    """Encode in slices so a progress bar can move; the model sorts each slice by length.
    Progress counts windows (several per chunk)."""
    slices = [texts[i:i + 4096] for i in range(0, len(texts), 4096)]
    vectors = []
    done = 0
    for part in slices:
        vectors.append(embedder.encode(part))
        done += len(part)
        if progress:
            progress(done, len(texts))
    return np.concatenate(vectors) if vectors else embedder.encode([])


async def _current_chunks(tenant_id: str,
                          sessions: async_sessionmaker) -> tuple[np.ndarray, list[str]]:
    async with sessions() as session:
        rows = (await session.execute(
            select(KnowledgeChunkRow.id, KnowledgeChunkRow.text)
            .where(KnowledgeChunkRow.tenant_id == tenant_id).order_by(KnowledgeChunkRow.id)
        )).all()
    return np.array([r.id for r in rows], dtype=np.int64), [r.text for r in rows]


async def _rebuild(tenant_id: str, index_files: IndexFiles, embedder: Embedder,
                   chunk_ids: np.ndarray, texts: list[str], new_owners: np.ndarray,
                   new_vectors: np.ndarray, report: IngestReport, *, reuse: bool = True,
                   progress: Progress | None = None) -> Manifest:
    # Old vectors are reused only for chunks whose id AND text are unchanged: ids alone are
    # not enough (SQLite reuses deleted ids; a new database starts again at 1).
    current = dict(zip(chunk_ids.tolist(), digests(texts).tolist(), strict=True))
    old_owners, old_vectors = index_files.vectors(tenant_id)
    old_digests = index_files.digests(tenant_id) if reuse else {}
    trusted = [cid for cid, digest in old_digests.items() if current.get(cid) == digest]
    fresh = (np.isin(old_owners, np.array(trusted, dtype=np.int64))
             & ~np.isin(old_owners, new_owners))
    old_owners, old_vectors = old_owners[fresh], old_vectors[fresh]
    owners = np.concatenate([old_owners, new_owners])
    vectors = np.concatenate([old_vectors, new_vectors]) if len(owners) else old_vectors
    keep = np.isin(owners, chunk_ids)  # windows of replaced and removed chunks go
    owners, vectors = owners[keep], vectors[keep]
    present = set(owners.tolist())
    missing = [i for i, chunk_id in enumerate(chunk_ids.tolist()) if chunk_id not in present]
    if missing:  # an earlier build failed, or the index folder was lost: embed again
        log.warning("re-embedding chunks missing from the index",
                    extra={"tenant_id": tenant_id, "chunks": len(missing)})
        groups = [windows(texts[i]) for i in missing]
        again = await asyncio.to_thread(_embed, embedder,
                                        [w for group in groups for w in group], progress)
        again_owners = [chunk_ids[i] for i, group in zip(missing, groups, strict=True)
                        for _ in group]
        owners = np.concatenate([owners, np.array(again_owners, dtype=np.int64)])
        vectors = np.concatenate([vectors, again])
        report.chunks_embedded += len(missing)
    return await asyncio.to_thread(index_files.build, tenant_id, chunk_ids, texts, owners, vectors)
