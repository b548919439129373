"""The shop's knowledge base over the API: list documents, upload files or post text, replace,
delete, re-index.

Changes are jobs (admin_api/worker.py runs them, one shop's one at a time): a request checks
what it can at once (type, size, emptiness: 415, 413, 422), keeps the upload
(knowledge/library.py), queues the job and answers 202 with it. The caller polls
`GET /jobs/{id}` until it is done; the first answer from a new document comes as soon as it is
(the action server notices the new index on its next search). A file uploaded under the name of
an existing document replaces it; so does `PUT /knowledge/documents/{id}`.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import Field
from sqlalchemy import func, select

from admin_api.api import API, Call, Model, Page, PageQuery
from admin_api.audit import record
from admin_api.errors import (
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from admin_api.plan_limits import require_document
from admin_api.principal import DESIGNERS
from admin_api.routes.jobs import JobOut
from admin_api.worker import DELETE, INGEST, REINDEX
from core.jobs import Job, active_jobs, enqueue
from knowledge.library import BadDocument, Library, UnsupportedType, check_content, document_name
from knowledge.tables import KnowledgeDocumentRow

DocumentStatus = Literal["ready", "updating", "deleting"]


class DocumentOut(Model):
    id: int
    name: str = Field(description="the file name it was ingested as; answers cite it")
    title: str
    url: str | None = Field(description="the page it came from, when the document names one")
    kind: str = Field(description="md, html, pdf, txt or csv")
    chunks: int = Field(description="passages in the index")
    size: int | None = Field(description="bytes of the file as ingested (uploaded or with "
                                         "the command-line tool); null for a document "
                                         "ingested before sizes were kept, until its next "
                                         "ingestion")
    updated_at: datetime
    status: DocumentStatus = Field(
        description="updating or deleting while a job for it is queued or running")


class DocumentJob(Model):
    """A change queued as a job: poll `GET /jobs/{job.id}` until it is done."""

    job: JobOut
    name: str | None = Field(None, description="the document the job works on")
    document: DocumentOut | None = Field(
        None, description="the document as it is now (replaced or removed by the job)")


class NewText(Model):
    title: str = Field(min_length=1, max_length=300)
    text: str = Field(min_length=1, description="Markdown or plain text")
    name: str | None = Field(None, max_length=200, pattern=r"^[^/\\]+\.md$",
                             description="the document's name (ending .md); by default made "
                                         "from the title. The same name again replaces it.")


class DocumentFilter(PageQuery):
    q: str | None = Field(None, max_length=200, pattern=r"^[^\x00]*$",
                          description="part of the name or the title")


def _library(call: Call[Any, Any]) -> Library:
    library: Library = call.ctx.library
    return library


def _kind(source: str) -> str:
    return Path(source).suffix.lower().lstrip(".") or "txt"


async def _pending(call: Call[Any, Any]) -> dict[str, str]:
    """name -> "updating" | "deleting" for documents with a queued or running job."""
    found: dict[str, str] = {}
    for job in await active_jobs(call.ctx.sessions, call.shop, "knowledge."):
        source = job.params.get("source")
        if isinstance(source, str):
            found[source] = "deleting" if job.kind == DELETE else "updating"
    return found


def _out(row: KnowledgeDocumentRow, library: Library, pending: dict[str, str]) -> DocumentOut:
    status = pending.get(row.source, "ready")
    return DocumentOut(id=row.id, name=row.source, title=row.title, url=row.url,
                       kind=_kind(row.source), chunks=row.chunk_count,
                       size=(row.size if row.size is not None
                             else library.uploads.size(row.tenant_id, row.source)),
                       updated_at=row.updated_at, status=cast(DocumentStatus, status))


async def _document(call: Call[Any, Any], *, source: str | None = None
                    ) -> KnowledgeDocumentRow | None:
    """The shop's document by the path's id (404 if not the shop's) or by name (None)."""
    where = [KnowledgeDocumentRow.tenant_id == call.shop]
    if source is None:
        raw = call.path.get("document_id", "")
        if not re.fullmatch(r"[0-9]{1,18}", raw):  # str.isdigit() passes "²", int() not
            raise NotFound("no such document in your shop")
        where.append(KnowledgeDocumentRow.id == int(raw))
    else:
        where.append(KnowledgeDocumentRow.source == source)
    async with call.ctx.sessions() as session:
        row = (await session.execute(select(KnowledgeDocumentRow).where(*where))).scalar()
    if row is None and source is None:
        raise NotFound("no such document in your shop")
    return row


async def _queue(call: Call[Any, Any], kind: str, params: dict[str, str]) -> Job:
    job = await enqueue(call.ctx.sessions, call.shop, kind, params, call.principal.actor)
    worker = getattr(call.ctx, "worker", None)
    if worker is not None:
        worker.wake()
    return job


def _uploaded(call: Call[Any, Any]) -> tuple[str, bytes]:
    """The multipart `file` field: its name and bytes, checked (415, 413, 422)."""
    file = call.request.files.get("file") if call.request.files else None
    if file is None:
        raise Unprocessable("send the file as the multipart/form-data field `file`")
    try:
        name = document_name(file.name or "")
    except UnsupportedType as exc:
        raise UnsupportedMediaType(str(exc)) from None
    except BadDocument as exc:
        raise Unprocessable(str(exc)) from None
    limit = call.ctx.settings.upload_max_bytes
    if len(file.body) > limit:
        raise PayloadTooLarge(f"{name} is {len(file.body):,} bytes; files up to "
                              f"{limit:,} bytes are accepted")
    try:
        check_content(name, file.body)
    except BadDocument as exc:
        raise Unprocessable(str(exc)) from None
    return name, file.body


async def _ingest(call: Call[Any, Any], name: str, data: bytes,
                  replaces: KnowledgeDocumentRow | None) -> DocumentJob:
    if replaces is None:  # a new document past the plan's limit: 402 (a re-upload is fine)
        await require_document(call, name)
    library = _library(call)
    token = await asyncio.to_thread(library.uploads.stage, call.shop, data)
    job = await _queue(call, INGEST, {"source": name, "upload": token})
    await record(call, "knowledge.upload", target=name,
                 after={"size": len(data), "job": job.id,
                        "replaces": replaces.id if replaces is not None else None})
    document = _out(replaces, library, {name: "updating"}) if replaces is not None else None
    return DocumentJob(job=JobOut.of(job), name=name, document=document)


@API.route("GET", "/knowledge/documents", roles=DESIGNERS, query=DocumentFilter,
           response=Page[DocumentOut], summary="List the knowledge base's documents")
async def list_documents(call: Call[None, DocumentFilter]) -> Page[DocumentOut]:
    where = [KnowledgeDocumentRow.tenant_id == call.shop]
    if call.query.q:
        like = "%" + re.sub(r"([%_\\])", r"\\\1", call.query.q.lower()) + "%"
        where.append(func.lower(KnowledgeDocumentRow.source).like(like, escape="\\")
                     | func.lower(KnowledgeDocumentRow.title).like(like, escape="\\"))
    async with call.ctx.sessions() as session:
        total = (await session.execute(
            select(func.count()).select_from(KnowledgeDocumentRow).where(*where))).scalar_one()
        rows = (await session.execute(
            select(KnowledgeDocumentRow).where(*where)
            .order_by(KnowledgeDocumentRow.source, KnowledgeDocumentRow.id)
            .offset(call.query.offset).limit(call.query.page_size))).scalars().all()
    library, pending = _library(call), await _pending(call)
    return Page[DocumentOut](items=[_out(row, library, pending) for row in rows],
                             total=int(total), page=call.query.page,
                             page_size=call.query.page_size)


@API.route("GET", "/knowledge/documents/{document_id}", roles=DESIGNERS, response=DocumentOut,
           summary="Read one document of the knowledge base")
async def read_document(call: Call[None, None]) -> DocumentOut:
    row = await _document(call)
    assert row is not None
    return _out(row, _library(call), await _pending(call))


@API.route("POST", "/knowledge/documents", roles=DESIGNERS, upload=True, response=DocumentJob,
           status=202, errors=(402, 415), summary="Upload a document to the knowledge base")
async def upload_document(call: Call[None, None]) -> DocumentJob:
    """Multipart field `file`: Markdown, HTML, PDF, plain text or CSV (FAQ or catalogue). A file
    with the name of an existing document replaces it. Answers at once with the ingestion job."""
    name, data = _uploaded(call)
    return await _ingest(call, name, data, await _document(call, source=name))


@API.route("PUT", "/knowledge/documents/{document_id}", roles=DESIGNERS, upload=True,
           response=DocumentJob, status=202, errors=(415,),
           summary="Replace a document of the knowledge base")
async def replace_document(call: Call[None, None]) -> DocumentJob:
    """Multipart field `file`, of the document's own type; the document keeps its name."""
    row = await _document(call)
    assert row is not None
    name, data = _uploaded(call)
    if _kind(name) != _kind(row.source):
        raise Unprocessable(f"{row.source} is a .{_kind(row.source)} document: replace it with "
                            f"a .{_kind(row.source)} file, or upload {name} as a new document")
    return await _ingest(call, row.source, data, row)


def _markdown_name(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:80]
    return f"{slug or 'text'}.md"


@API.route("POST", "/knowledge/texts", roles=DESIGNERS, body=NewText, response=DocumentJob,
           status=202, errors=(402,), summary="Add text to the knowledge base")
async def add_text(call: Call[NewText, None]) -> DocumentJob:
    """Stored as a Markdown document named after the title (or `name`); the same name again
    replaces it."""
    try:
        name = document_name(call.body.name or _markdown_name(call.body.title))
    except (UnsupportedType, BadDocument) as exc:
        raise Unprocessable(str(exc)) from None
    title = " ".join(call.body.title.split())
    text = call.body.text if call.body.text.lstrip().startswith("#") else (
        f"# {title}\n\n{call.body.text}")
    data = text.encode("utf-8")
    limit = call.ctx.settings.upload_max_bytes
    if len(data) > limit:
        raise PayloadTooLarge(f"the text is {len(data):,} bytes; up to {limit:,} are accepted")
    try:
        check_content(name, data)
    except BadDocument as exc:
        raise Unprocessable(str(exc)) from None
    return await _ingest(call, name, data, await _document(call, source=name))


@API.route("DELETE", "/knowledge/documents/{document_id}", roles=DESIGNERS,
           response=DocumentJob, status=202, summary="Delete a document of the knowledge base")
async def delete_document(call: Call[None, None]) -> DocumentJob:
    """Its passages leave the index when the job is done; answers no longer cite it."""
    row = await _document(call)
    assert row is not None
    job = await _queue(call, DELETE, {"source": row.source})
    await record(call, "knowledge.delete", target=row.source,
                 before={"id": row.id, "title": row.title, "chunks": row.chunk_count},
                 after={"job": job.id})
    return DocumentJob(job=JobOut.of(job), name=row.source,
                       document=_out(row, _library(call), {row.source: "deleting"}))


@API.route("POST", "/knowledge/reindex", roles=DESIGNERS, response=DocumentJob, status=202,
           summary="Re-index the knowledge base")
async def reindex_knowledge(call: Call[None, None]) -> DocumentJob:
    """Reads every uploaded file again and re-embeds every passage into a fresh index."""
    job = await _queue(call, REINDEX, {})
    await record(call, "knowledge.reindex", after={"job": job.id})
    return DocumentJob(job=JobOut.of(job), name=None, document=None)
