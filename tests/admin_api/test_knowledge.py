"""The knowledge base over the admin API, with the real worker, embedder and index files.

What a shop's owner or designer notices: an upload answers at once with a job that ends done,
after which the document is listed with its passages and retrieval finds it; the same name
uploaded again replaces it; deleting it removes it from answers; a file of the wrong type, an
empty one or one over the size limit is refused at once with a reason; a PDF without text ends
in a failed job that says so. Agents may not touch the knowledge base, and another shop's
documents are not found.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import update

from admin_api.worker import Worker, knowledge_handlers, library_for
from knowledge.__main__ import run_ingest
from knowledge.embeddings import get_embedder
from knowledge.index import IndexFiles
from knowledge.retrieval import Retriever
from knowledge.tables import KnowledgeDocumentRow
from tests.admin_api.conftest import Admin, Shop
from tests.knowledge.conftest import pdf_bytes

pytestmark = pytest.mark.asyncio

LIGHTHOUSE = ("# Lighthouse visits\n\nEvery customer may visit our lighthouse workshop in "
              "Westerhever on the first Sunday of each month, from 10 to 4. Bring your order "
              "number; tea is free.\n")
LIGHTHOUSE_2 = ("# Lighthouse visits\n\nThe lighthouse workshop in Westerhever is closed for "
                "renovation until May; visits start again on the first Sunday in June.\n")


@pytest_asyncio.fixture(autouse=True)
async def worker(admin: Admin) -> AsyncIterator[Worker]:
    """The job runner as the admin process runs it, for the whole test (Sanic's ASGI test
    client starts and stops the app around each request, which would stop the app's own)."""
    admin.app.config.JOB_WORKER = False
    running = Worker(admin.sessions,
                     knowledge_handlers(library_for(admin.settings, admin.sessions)), poll=0.05)
    running.start()
    yield running
    await running.stop()


async def wait_for(admin: Admin, job_id: str, role: str = "owner",
                   shop: Shop | None = None, timeout: float = 90) -> dict[str, Any]:
    """Poll GET /jobs/{id} as a client would, until the job is done or failed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status, job = await admin.call("GET", f"/jobs/{job_id}", role=role, shop=shop)
        assert status == 200, job
        assert 0 <= job["progress"] <= 1
        if job["status"] in ("done", "failed"):
            return job
        assert asyncio.get_running_loop().time() < deadline, f"job still {job['status']}"
        await asyncio.sleep(0.1)


async def upload(admin: Admin, name: str, data: bytes, role: str = "owner",
                 shop: Shop | None = None) -> tuple[int, Any]:
    return await admin.call("POST", "/knowledge/documents", role=role, shop=shop,
                            files={"file": (name, data, "application/octet-stream")})


async def search(admin: Admin, shop: Shop, question: str) -> list[str]:
    """The sources retrieval cites for a question, as the action server would find them."""
    retriever = Retriever(IndexFiles(admin.settings.knowledge_dir), admin.sessions,
                          get_embedder())
    found = await retriever.search(shop.id, question)
    return [p.source for p in found.passages]


async def documents(admin: Admin, role: str = "owner",
                    shop: Shop | None = None) -> dict[str, dict[str, Any]]:
    status, page = await admin.call("GET", "/knowledge/documents?page_size=200", role=role,
                                    shop=shop)
    assert status == 200, page
    return {d["name"]: d for d in page["items"]}


async def test_an_upload_is_a_job_after_which_the_document_is_listed_and_found(
        admin: Admin) -> None:
    status, queued = await upload(admin, "lighthouse.md", LIGHTHOUSE.encode(), role="designer")
    assert status == 202, queued
    assert queued["job"]["status"] == "queued" and queued["job"]["kind"] == "knowledge.ingest"
    assert queued["name"] == "lighthouse.md" and queued["document"] is None

    job = await wait_for(admin, queued["job"]["id"], role="designer")
    assert job["status"] == "done", job["error"]
    assert job["progress"] == 1 and job["error"] is None
    assert job["result"]["source"] == "lighthouse.md" and job["result"]["chunks"] >= 1
    assert job["started_at"] and job["finished_at"] and job["finished_at"] >= job["created_at"]

    listed = (await documents(admin, role="designer"))["lighthouse.md"]
    assert listed["id"] == job["result"]["document_id"] and listed["status"] == "ready"
    assert listed["chunks"] == job["result"]["chunks"] and listed["kind"] == "md"
    assert listed["size"] == len(LIGHTHOUSE.encode()) and listed["title"] == "Lighthouse visits"
    status, one = await admin.call("GET", f"/knowledge/documents/{listed['id']}")
    assert status == 200 and one == listed
    sources = await search(admin, admin.demo, "can I visit the lighthouse workshop?")
    assert sources[:1] == ["lighthouse.md"]

    status, audit = await admin.call("GET", "/audit")
    if status == 200:  # the audit route is another part's; when it is there, the upload shows
        assert any(e["action"] == "knowledge.upload" for e in audit["items"])


async def test_the_same_name_again_replaces_the_document_and_delete_removes_it(
        admin: Admin) -> None:
    _, first = await upload(admin, "lighthouse.md", LIGHTHOUSE.encode())
    done = await wait_for(admin, first["job"]["id"])
    doc_id = done["result"]["document_id"]

    status, again = await upload(admin, "lighthouse.md", LIGHTHOUSE_2.encode())
    assert status == 202 and again["document"]["id"] == doc_id
    assert again["document"]["status"] == "updating"
    replaced = await wait_for(admin, again["job"]["id"])
    assert replaced["status"] == "done" and replaced["result"]["action"] == "updated"
    assert replaced["result"]["document_id"] == doc_id
    listed = await documents(admin)
    assert list(listed).count("lighthouse.md") == 1
    assert listed["lighthouse.md"]["size"] == len(LIGHTHOUSE_2.encode())

    # PUT by id with the document's own type replaces it too; another type is refused.
    status, body = await admin.call("PUT", f"/knowledge/documents/{doc_id}",
                                    files={"file": ("x.txt", b"plain words", "text/plain")})
    assert status == 422 and ".md" in body["detail"]
    status, put = await admin.call("PUT", f"/knowledge/documents/{doc_id}", role="designer",
                                   files={"file": ("new.md", LIGHTHOUSE.encode(), "text/markdown")})
    assert status == 202 and put["name"] == "lighthouse.md"
    assert (await wait_for(admin, put["job"]["id"]))["status"] == "done"

    status, deleting = await admin.call("DELETE", f"/knowledge/documents/{doc_id}",
                                        role="designer")
    assert status == 202 and deleting["job"]["kind"] == "knowledge.delete"
    assert deleting["document"]["status"] == "deleting"
    deleted = await wait_for(admin, deleting["job"]["id"])
    assert deleted["status"] == "done" and deleted["result"]["removed"] is True
    assert "lighthouse.md" not in await documents(admin)
    assert "lighthouse.md" not in await search(admin, admin.demo, "lighthouse workshop visits")
    status, _ = await admin.call("GET", f"/knowledge/documents/{doc_id}")
    assert status == 404


async def test_posted_text_becomes_a_markdown_document(admin: Admin) -> None:
    status, queued = await admin.call("POST", "/knowledge/texts", role="designer", json={
        "title": "Gift wrapping", "text": "We wrap any order in recycled paper for 2 EUR."})
    assert status == 202 and queued["name"] == "gift-wrapping.md"
    job = await wait_for(admin, queued["job"]["id"])
    assert job["status"] == "done"
    listed = (await documents(admin))["gift-wrapping.md"]
    assert listed["title"] == "Gift wrapping" and listed["chunks"] >= 1
    assert (await search(admin, admin.demo, "do you offer gift wrapping?"))[:1] == [
        "gift-wrapping.md"]
    status, body = await admin.call("POST", "/knowledge/texts",
                                    json={"title": "x", "text": "y", "name": "../evil.md"})
    assert status == 422


async def test_a_file_we_cannot_read_is_refused_with_a_reason(admin: Admin) -> None:
    status, body = await upload(admin, "catalogue.docx", b"PK\x03\x04 binary")
    assert status == 415 and ".md" in body["detail"] and ".pdf" in body["detail"]
    status, body = await upload(admin, "empty.md", b"  \n")
    assert status == 422 and "empty" in body["detail"]
    status, body = await upload(admin, "image.txt", b"\x89PNG\r\n\x1a\n\0\0\0")
    assert status == 422 and "text" in body["detail"]
    status, body = await upload(admin, "fake.pdf", b"hello, not a pdf")
    assert status == 422 and "PDF" in body["detail"]
    status, body = await admin.call("POST", "/knowledge/documents", data={"file": "no upload"})
    assert status == 422 and "file" in body["detail"]

    # A real PDF with no text in it: only parsing finds out, so the job fails and says why.
    empty_pdf = (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n"
                 b"<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n"
                 b"%%EOF\n")
    status, queued = await upload(admin, "scan.pdf", empty_pdf)
    assert status == 202
    job = await wait_for(admin, queued["job"]["id"])
    assert job["status"] == "failed" and "scan.pdf" in job["error"]
    assert "Traceback" not in job["error"] and job["result"] is None
    assert "scan.pdf" not in await documents(admin)


async def test_a_file_over_the_limit_is_413(admin: Admin) -> None:
    admin.app.ctx.settings = dataclasses.replace(admin.settings, upload_max_bytes=2048)
    status, body = await upload(admin, "big.md", b"# Big\n\n" + b"word " * 1000)
    assert status == 413 and "2,048" in body["detail"]
    status, body = await admin.call("POST", "/knowledge/texts",
                                    json={"title": "Big", "text": "word " * 1000})
    assert status == 413
    status, _ = await upload(admin, "small.md", b"# Small\n\nfits")
    assert status == 202


async def test_agents_may_not_touch_the_knowledge_base(admin: Admin) -> None:
    for method, path, kwargs in (
            ("GET", "/knowledge/documents", {}),
            ("POST", "/knowledge/documents",
             {"files": {"file": ("a.md", b"# A\n\nb", "text/markdown")}}),
            ("POST", "/knowledge/texts", {"json": {"title": "a", "text": "b"}}),
            ("DELETE", "/knowledge/documents/1", {}),
            ("POST", "/knowledge/reindex", {})):
        status, body = await admin.call(method, path, role="agent", **kwargs)
        assert status == 403 and body["detail"], (method, path)
    assert await documents(admin) == {}


async def test_another_shops_documents_and_jobs_are_not_found(admin: Admin) -> None:
    _, queued = await upload(admin, "lighthouse.md", LIGHTHOUSE.encode(), shop=admin.other)
    job = await wait_for(admin, queued["job"]["id"], shop=admin.other)
    theirs = job["result"]["document_id"]

    status, _ = await admin.call("GET", f"/jobs/{job['id']}")
    assert status == 404
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("GET", {}), ("DELETE", {}),
        ("PUT", {"files": {"file": ("x.md", b"# X\n\ny", "text/markdown")}})]
    for method, kwargs in attempts:
        status, body = await admin.call(method, f"/knowledge/documents/{theirs}", **kwargs)
        assert status == 404 and body["detail"], method
    assert await documents(admin) == {}
    assert "lighthouse.md" in await documents(admin, shop=admin.other)
    # Same name in our shop: a new document of ours, theirs untouched.
    _, ours = await upload(admin, "lighthouse.md", LIGHTHOUSE_2.encode())
    assert ours["document"] is None
    mine = await wait_for(admin, ours["job"]["id"])
    assert mine["result"]["document_id"] != theirs
    assert (await documents(admin, shop=admin.other))["lighthouse.md"]["id"] == theirs


async def test_reindex_rebuilds_the_index_from_every_document(admin: Admin) -> None:
    _, queued = await upload(admin, "lighthouse.md", LIGHTHOUSE.encode())
    first = await wait_for(admin, queued["job"]["id"])
    status, reindex = await admin.call("POST", "/knowledge/reindex", role="designer")
    assert status == 202 and reindex["job"]["kind"] == "knowledge.reindex"
    job = await wait_for(admin, reindex["job"]["id"])
    assert job["status"] == "done" and job["result"]["documents_read"] == 1
    assert job["result"]["chunks_embedded"] == job["result"]["index_chunks"] >= 1
    assert job["result"]["index_version"] != first["result"]["index_version"]
    assert (await search(admin, admin.demo, "lighthouse workshop visits"))[:1] == [
        "lighthouse.md"]


async def test_syncing_a_folder_with_the_cli_keeps_what_designers_uploaded(
        admin: Admin, tmp_path: Path) -> None:
    _, queued = await upload(admin, "lighthouse.md", LIGHTHOUSE.encode())
    job = await wait_for(admin, queued["job"]["id"])
    assert job["status"] == "done", job.get("error")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "opening.md").write_text("# Opening hours\n\nWe answer mail on weekdays.\n")
    (folder / "lighthouse.md").write_text("# Lighthouse\n\nAn old text of the CLI's folder.\n")

    assert await run_ingest(admin.settings, "demo", [folder]) == 0

    listed = await documents(admin)
    assert set(listed) == {"lighthouse.md", "opening.md"}
    assert listed["lighthouse.md"]["size"] == len(LIGHTHOUSE.encode())
    assert (await search(admin, admin.demo, "lighthouse workshop Westerhever"))[:1] == [
        "lighthouse.md"]


async def test_documents_synced_with_the_cli_show_their_size(admin: Admin,
                                                              tmp_path: Path) -> None:
    # `make run` and `python -m knowledge ingest` bring files in without an upload: the
    # Knowledge tab's Size column was empty for them.
    opening = "# Opening hours\n\nWe answer mail on weekdays, 9 to 17.\n"
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "opening.md").write_text(opening)
    assert await run_ingest(admin.settings, "demo", [folder]) == 0
    assert (await documents(admin))["opening.md"]["size"] == len(opening.encode())

    # Ingested before sizes were kept: the next sync fills it in without re-reading the file.
    async with admin.sessions() as session:
        await session.execute(update(KnowledgeDocumentRow).values(size=None))
        await session.commit()
    assert (await documents(admin))["opening.md"]["size"] is None
    assert await run_ingest(admin.settings, "demo", [folder]) == 0
    listed = await documents(admin)
    assert listed["opening.md"]["size"] == len(opening.encode())
    assert listed["opening.md"]["chunks"] >= 1


async def test_every_supported_format_is_ingested(admin: Admin) -> None:
    files = {
        "care.txt": b"Caring for wool\n\nWash our wool jumpers cold, by hand, and dry them flat.\n",
        "payments.html": b"<html><head><title>Payments</title></head><body><h1>Payments</h1>"
                         b"<p>We accept Klarna, PayPal and gift cards.</p></body></html>",
        "faq.csv": b"question,answer\nDo you sell gift cards?,Yes: from 10 to 200 EUR.\n",
        "warranty.pdf": pdf_bytes(["Warranty", "Every backpack has a lifetime warranty."],
                                  title="Warranty"),
    }
    queued = {name: (await upload(admin, name, data)) for name, data in files.items()}
    for name, (status, body) in queued.items():
        assert status == 202, (name, body)
        job = await wait_for(admin, body["job"]["id"])
        assert job["status"] == "done", (name, job["error"])
    listed = await documents(admin)
    assert {name: d["kind"] for name, d in listed.items()} == {
        "care.txt": "txt", "payments.html": "html", "faq.csv": "csv", "warranty.pdf": "pdf"}
    assert all(d["chunks"] >= 1 and d["size"] == len(files[n]) for n, d in listed.items())
    assert (await search(admin, admin.demo, "is there a warranty on backpacks?"))[:1] == [
        "warranty.pdf"]
