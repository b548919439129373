"""A shop's knowledge base one document at a time, as the admin API manages it.

The CLI (`python -m knowledge ingest`) makes the knowledge base exactly a folder of files. Over
the API people upload, replace and delete single documents, so the files they sent are kept
here, under `<var>/knowledge/.uploads/<tenant_id>/` (next to the indexes, on the same volume in
compose; ".uploads" is no tenant id, knowledge/index.py refuses ids starting with a dot):

    staged/<token>        an upload waiting for its job (the request returned at once)
    documents/<source>    the file behind each document ingested from an upload

A re-index reads `documents/` again (so a change of the loaders or of chunking reaches every
uploaded document) and re-embeds every chunk into a fresh index. Documents that came from the
CLI have no file here; their chunks are re-embedded from the database all the same.

Every change goes through knowledge/ingest.py, the CLI's code, so a document uploaded here is
chunked, embedded and indexed exactly as the same file given to the CLI, and answers are the
same. The index build swaps the tenant's CURRENT pointer (knowledge/index.py); the action
server's next search sees the new version (one small file read) and loads it, so the first
answer from a new document comes as soon as its job is done.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from knowledge.embeddings import Embedder
from knowledge.index import IndexFiles
from knowledge.ingest import IngestReport, SourceFile, ingest
from knowledge.loaders import SUPPORTED, TEXT_LOADERS
from knowledge.tables import KnowledgeDocumentRow

# Characters kept in a document's name: it is a file name here and a citation in answers.
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+-]+")
MAX_NAME = 200
Fraction = Callable[[float], None]  # progress of the whole job, 0..1


class UnsupportedType(ValueError):
    """A file whose type we do not read (415)."""


class BadDocument(ValueError):
    """A file we cannot make a document of: empty, not text, a PDF without text (422)."""


def document_name(filename: str) -> str:
    """The name an uploaded file is stored, listed and cited by: its base name, tidied.
    The same name uploaded again replaces the document."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("-", base).strip(" .-")[:MAX_NAME]
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED:
        raise UnsupportedType(
            f"{base or 'the file'}: unsupported type; upload one of {', '.join(SUPPORTED)}")
    if not Path(name).stem:
        raise BadDocument("the file needs a name, e.g. shipping.md")
    return name


def check_content(name: str, data: bytes) -> None:
    """Cheap checks a request can answer at once, so an obviously wrong file is refused with
    a 422 instead of a failed job a second later. Parsing is the job's work."""
    if not data.strip():
        raise BadDocument(f"{name} is empty")
    suffix = Path(name).suffix.lower()
    if suffix == ".pdf" and not data[:1024].lstrip().startswith(b"%PDF-"):
        raise BadDocument(f"{name} is not a PDF file")
    if suffix in TEXT_LOADERS and b"\0" in data[:8192]:
        raise BadDocument(f"{name} is not a text file (it holds binary data)")


class Uploads:
    """Files behind a shop's uploaded documents (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def under(cls, knowledge_dir: Path) -> Uploads:
        """The uploads of this deployment (settings.knowledge_dir)."""
        return cls(knowledge_dir / ".uploads")

    def along_with(self, tenant_id: str, files: list[SourceFile]) -> list[SourceFile]:
        """`files` (the CLI's folder) and the shop's uploaded documents, an upload winning
        over a file of the same name: syncing a folder (`python -m knowledge ingest`, the demo
        shop at every `make run`) must not remove or revert what designers uploaded."""
        uploaded = {f.source: f for f in self.files(tenant_id)}
        return [f for f in files if f.source not in uploaded] + list(uploaded.values())

    def _tenant(self, tenant_id: str) -> Path:
        if not tenant_id or "/" in tenant_id or tenant_id.startswith("."):
            raise ValueError(f"not a tenant id: {tenant_id!r}")
        return self.root / tenant_id

    def _document(self, tenant_id: str, source: str) -> Path:
        if "/" in source or source.startswith("."):
            raise ValueError(f"not a document name: {source!r}")
        return self._tenant(tenant_id) / "documents" / source

    def stage(self, tenant_id: str, data: bytes) -> str:
        """Keep an upload until its job runs; returns the token the job names it by."""
        token = uuid.uuid4().hex
        folder = self._tenant(tenant_id) / "staged"
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{token}.part"
        partial.write_bytes(data)
        os.replace(partial, folder / token)  # a reader never sees half a file
        return token

    def staged(self, tenant_id: str, token: str) -> bytes:
        if not re.fullmatch(r"[0-9a-f]{32}", token):
            raise ValueError("not an upload token")
        return (self._tenant(tenant_id) / "staged" / token).read_bytes()

    def keep(self, tenant_id: str, token: str, source: str) -> None:
        """The staged upload becomes the file behind document `source` (replacing any)."""
        target = self._document(tenant_id, source)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tenant(tenant_id) / "staged" / token, target)

    def discard(self, tenant_id: str, token: str) -> None:
        (self._tenant(tenant_id) / "staged" / token).unlink(missing_ok=True)

    def remove(self, tenant_id: str, source: str) -> None:
        self._document(tenant_id, source).unlink(missing_ok=True)

    def size(self, tenant_id: str, source: str) -> int | None:
        try:
            return self._document(tenant_id, source).stat().st_size
        except (OSError, ValueError):
            return None

    def files(self, tenant_id: str) -> list[SourceFile]:
        folder = self._tenant(tenant_id) / "documents"
        if not folder.is_dir():
            return []
        return [SourceFile(path.name, path.read_bytes())
                for path in sorted(folder.iterdir()) if path.is_file()]


@dataclass
class Library:
    """Adds, replaces, removes and re-indexes documents of a shop (each call is one job's
    work; the caller runs one shop's jobs one at a time, core/jobs.py)."""

    sessions: async_sessionmaker
    index_files: IndexFiles
    uploads: Uploads
    embedder_factory: Callable[[], Embedder]  # knowledge.embeddings.get_embedder, as the CLI

    async def embedder(self) -> Embedder:
        # The first call loads the model (seconds): off the event loop.
        return await asyncio.to_thread(self.embedder_factory)

    async def warm(self) -> None:
        """Load the embedding model now (it loads on its first encode, seconds to tens of
        seconds), so that the first upload's job does not wait for it."""
        embedder = await self.embedder()
        await asyncio.to_thread(embedder.encode, ["warm up"])

    async def add(self, tenant_id: str, source: str, token: str,
                  progress: Fraction) -> dict[str, Any]:
        """Ingest the staged upload as document `source` (new, or replacing the one of that
        name). Raises BadDocument with the loader's reason when the file cannot be read."""
        data = await asyncio.to_thread(self.uploads.staged, tenant_id, token)
        progress(0.05)
        report = await ingest(tenant_id, [SourceFile(source, data)], self.sessions,
                              self.index_files, await self.embedder(),
                              _embedding(progress, 0.1, 0.9), prune=False)
        if source in report.failed:
            self.uploads.discard(tenant_id, token)
            raise BadDocument(report.failed[source])
        await asyncio.to_thread(self.uploads.keep, tenant_id, token, source)
        async with self.sessions() as session:
            row = (await session.execute(select(KnowledgeDocumentRow).where(
                KnowledgeDocumentRow.tenant_id == tenant_id,
                KnowledgeDocumentRow.source == source))).scalar_one()
        action = ("added" if source in report.added else
                  "updated" if source in report.updated else "unchanged")
        return {"document_id": row.id, "source": source, "title": row.title,
                "chunks": row.chunk_count, "action": action, **_index(report)}

    async def remove(self, tenant_id: str, source: str, progress: Fraction) -> dict[str, Any]:
        """Remove document `source`: its chunks leave the database and the index."""
        progress(0.05)
        report = await ingest(tenant_id, [], self.sessions, self.index_files,
                              await self.embedder(), _embedding(progress, 0.1, 0.9),
                              prune=False, drop={source})
        await asyncio.to_thread(self.uploads.remove, tenant_id, source)
        return {"source": source, "removed": source in report.removed, **_index(report)}

    async def reindex(self, tenant_id: str, progress: Fraction) -> dict[str, Any]:
        """Read every uploaded file again and re-embed every chunk into a fresh index."""
        files = await asyncio.to_thread(self.uploads.files, tenant_id)
        progress(0.05)
        report = await ingest(tenant_id, files, self.sessions, self.index_files,
                              await self.embedder(), _embedding(progress, 0.1, 0.95),
                              prune=False, rebuild=True)
        return {"documents_read": len(files),
                "documents_changed": len(report.added) + len(report.updated),
                "failed": report.failed, **_index(report)}


def _embedding(progress: Fraction, start: float, end: float) -> Callable[[int, int], None]:
    """ingest's (done, total) windows embedded, as the job's fraction between start and end."""
    def report(done: int, total: int) -> None:
        progress(start + (end - start) * (done / total if total else 1.0))
    return report


def _index(report: IngestReport) -> dict[str, Any]:
    return {"chunks_embedded": report.chunks_embedded, "index_chunks": report.chunks_total,
            "index_version": report.manifest.version if report.manifest else None}
