"""Upload → job → answer, through the real stack (admin service, gateway, Rasa, action server),
on both storage shapes.

What a designer notices: a document uploaded over the admin API is answered from within
seconds of its job being done, cited by its name, without restarting anything; once deleted
it is no longer cited. The admin service's worker embeds and builds the index; the action
server (another process) sees the new index version on its next search.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.fakes.anthropic_server import AnthropicFake, grounded_responder
from tests.integration.conftest import Visitor
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration

DOCUMENT = ("# Lighthouse workshop\n\nCustomers may visit our lighthouse workshop in Westerhever "
            "on the first Sunday of every month between 10 and 4; the guided tour is free and "
            "takes forty minutes.\n")
QUESTION = "can I visit your lighthouse workshop in Westerhever?"


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        response = client.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        seen.append(job["progress"])
        if job["status"] in ("done", "failed"):
            assert seen == sorted(seen), f"progress went backwards: {seen}"
            return job
        assert time.monotonic() < deadline, f"job still {job['status']} at {job['progress']}"
        time.sleep(0.2)


def cited(visitor: Visitor) -> list[str]:
    return [s["document"] for r in visitor.replies
            for s in (r.get("custom") or {}).get("knowledge", {}).get("sources", [])]


def test_an_uploaded_document_answers_within_seconds_of_its_job(
        stack: Stack, anthropic_api: AnthropicFake) -> None:
    anthropic_api.responder = grounded_responder
    headers = {"Authorization": f"Bearer {stack.admin_key('designer')}"}
    with httpx.Client(base_url=stack.admin, headers=headers, timeout=30) as client:
        before = Visitor(stack)
        before.say(QUESTION)
        assert "lighthouse-workshop.md" not in cited(before)

        started = time.monotonic()
        response = client.post("/api/v1/knowledge/documents", files={
            "file": ("lighthouse-workshop.md", DOCUMENT.encode(), "text/markdown")})
        assert response.status_code == 202, response.text
        answered_in = time.monotonic() - started
        job = wait_for_job(client, response.json()["job"]["id"])
        assert job["status"] == "done", job["error"]
        ingested_in = time.monotonic() - started
        assert job["result"]["source"] == "lighthouse-workshop.md"

        done = time.monotonic()
        visitor = Visitor(stack)
        reply = visitor.say(QUESTION)
        first_answer_in = time.monotonic() - done
        assert "Westerhever" in reply or "Sunday" in reply, reply
        assert cited(visitor) == ["lighthouse-workshop.md"]
        assert first_answer_in < 10
        ran = (datetime.fromisoformat(job["finished_at"])
               - datetime.fromisoformat(job["started_at"])).total_seconds()
        print(f"\nupload answered in {answered_in * 1000:.0f} ms; job done after "
              f"{ingested_in:.1f} s (ran {ran:.1f} s); first answer from the document "
              f"{first_answer_in:.2f} s after the job was done")

        listed = client.get("/api/v1/knowledge/documents", params={"q": "lighthouse"}).json()
        assert [d["name"] for d in listed["items"]] == ["lighthouse-workshop.md"]
        response = client.delete(f"/api/v1/knowledge/documents/{listed['items'][0]['id']}")
        assert response.status_code == 202, response.text
        assert wait_for_job(client, response.json()["job"]["id"])["status"] == "done"

        after = Visitor(stack)
        after.say(QUESTION)
        assert "lighthouse-workshop.md" not in cited(after)
