"""The gateway's internal route `POST /internal/agent-replies`, over real HTTP, recorded: what
the admin service hands over (body and Authorization header), answered as the gateway does
(202 `{"accepted": true}`; `status` makes it answer something else, e.g. 503 or 404)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class GatewayFake:
    def __init__(self) -> None:
        self.status = 202
        self.received: list[tuple[dict[str, Any], str | None]] = []  # (body, Authorization)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def bodies(self) -> list[dict[str, Any]]:
        return [body for body, _ in self.received]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = fake.status if self.path == "/internal/agent-replies" else 404
                if status < 300:
                    fake.received.append((body, self.headers["Authorization"]))
                answer = ({"accepted": True} if status < 300 else {"detail": "refused"})
                data = json.dumps(answer).encode()
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
