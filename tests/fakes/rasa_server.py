"""Rasa's REST channel (`POST /webhooks/rest/webhook`), scripted, over real HTTP.

Answers like Rasa does: a list of bot messages for the sender. What it answers depends on the
text: "echo: <text>" by default; "offer" adds two buttons; "long" is answered by two messages
(a reply that goes out as two provider messages); "slow" takes 0.3 s (it counts how many it
answers at once); "boom" is a 500. With `silent=True` it answers [] to everything, as Rasa does
when the action server is down.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

CHOICES = [{"title": "Yes, please", "payload": "/affirm"},
           {"title": "No, thanks", "payload": "/deny"}]


class RasaFake:
    def __init__(self, silent: bool = False) -> None:
        self.silent = silent
        self.seen: list[dict[str, Any]] = []  # every request body, in order
        self.in_flight = 0
        self.most_in_flight = 0  # turns answered at once ("slow" ones)
        self._counting = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def texts(self) -> list[str]:
        return [body["message"] for body in self.seen]

    def answer(self, body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        text = body["message"]
        if text == "slow":
            with self._counting:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            time.sleep(0.3)
            with self._counting:
                self.in_flight -= 1
        if text == "boom":
            return 500, []
        if self.silent:
            return 200, []
        reply: dict[str, Any] = {"recipient_id": body["sender"], "text": f"echo: {text}"}
        if text == "offer":
            reply["buttons"] = CHOICES
        if text == "long":
            return 200, [{**reply, "text": "part 1"}, {**reply, "text": "part 2"}]
        return 200, [reply]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.seen.append(body)
                status, messages = fake.answer(body)
                data = json.dumps(messages).encode() if status == 200 else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        return Handler

    def __enter__(self) -> Self:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
