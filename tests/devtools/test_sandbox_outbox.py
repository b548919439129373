"""The sandbox's outbox page: what the shops sent, newest first, escaped, links clickable."""

from __future__ import annotations

from pathlib import Path

from devtools.sandbox import create_app
from tests.servers import free_port


def test_the_outbox_page_lists_sends_newest_first_with_links(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.jsonl"
    app = create_app(outbox, name=f"sandbox{free_port()}")
    _, empty = app.test_client.get("/")
    assert empty.status == 200 and "Nothing sent yet" in empty.text
    for body in ("alpha <b>bold</b>", "Join: https://admin.example/invite?token=t1&x=2"):
        _, sent = app.test_client.post("/2010-04-01/Accounts/AC1/Messages.json",
                                       data={"To": "+15550001", "From": "+15559999",
                                             "Body": body})
        assert sent.status == 201
    _, page = app.test_client.get("/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.index("invite?token") < page.text.index("alpha")
    assert "&lt;b&gt;bold&lt;/b&gt;" in page.text and "<b>bold" not in page.text
    assert '<a href="https://admin.example/invite?token=t1&amp;x=2">' in page.text
    assert "twilio · from +15559999 to +15550001" in page.text
