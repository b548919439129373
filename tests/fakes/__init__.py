"""Real local HTTP servers standing in for shop platforms in tests.

Each fake is a stdlib `ThreadingHTTPServer` on 127.0.0.1 (port 0, so tests never collide),
served from a background thread. It records every request, checks credentials like the real
platform (401 otherwise), and can be told to misbehave for the next request(s): answer with
an error status, hang, or process the request and then lose the answer (the case that makes
idempotency matter).

Use as a context manager::

    with ShopifyFake(token="shpat_x") as shop:
        backend = ShopifyBackend(shop.base_url, "shpat_x",
                                 destinations=Destinations(allow_private=True))
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HOST = "127.0.0.1"  # loopback only


def load_fixture(*parts: str) -> Any:
    return json.loads(FIXTURES.joinpath(*parts).read_text(encoding="utf-8"))


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Response = tuple[int, dict[str, str], Any]  # status, extra headers, JSON-able body (or bytes)


@dataclass
class _Failure:
    kind: str  # "status" | "hang" | "lose"
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    match: Callable[[RecordedRequest], bool] | None = None


class FakeServer:
    """Base class: subclasses implement `authorized`, `unauthorized` and `route`."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._failures: deque[_Failure] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- what subclasses provide -------------------------------------------------------
    def authorized(self, request: RecordedRequest) -> bool:
        raise NotImplementedError

    def unauthorized(self, request: RecordedRequest) -> Response:
        return 401, {}, {"errors": "Unauthorized"}

    def route(self, request: RecordedRequest) -> Response:
        raise NotImplementedError

    # -- misbehaviour -------------------------------------------------------------------
    def fail_next(
        self,
        status: int = 500,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
    ) -> None:
        """Answer the next `times` (matching) requests with `status` instead of handling them."""
        for _ in range(times):
            failure = _Failure("status", status=status, headers=headers or {}, match=match)
            self._failures.append(failure)

    def hang_next(self, seconds: float = 5.0, *, times: int = 1,
                  match: Callable[[RecordedRequest], bool] | None = None) -> None:
        """Hold the next `times` (matching) requests for `seconds` before answering."""
        for _ in range(times):
            self._failures.append(_Failure("hang", seconds=seconds, match=match))

    def lose_next_response(self, status: int = 502, *,
                           match: Callable[[RecordedRequest], bool] | None = None) -> None:
        """Handle the next (matching) request for real, but answer `status` (a lost reply)."""
        self._failures.append(_Failure("lose", status=status, match=match))

    def requests_to(self, fragment: str, method: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests
                if fragment in r.path and (method is None or r.method == method)]

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://{HOST}:{self._server.server_port}"

    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, the client's delayed
            # ACK holds the body ~40 ms, which would count as our latency in benchmarks.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

            def _handle(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # clients hanging up on a hung request are expected in tests

        server = self._server = Server((HOST, 0), Handler)
        # A short poll interval keeps shutdown (and so every test's teardown) fast.
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # release hung handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- plumbing --------------------------------------------------------------------------
    def _next_failure(self, request: RecordedRequest) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.match is None or failure.match(request):
                    self._failures.remove(failure)
                    return failure
        return None

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        request = RecordedRequest(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        with self._lock:
            self.requests.append(request)

        failure = self._next_failure(request)
        if failure is not None and failure.kind == "hang":
            self._stop.wait(failure.seconds)
        if failure is not None and failure.kind == "status":
            self._send(handler, failure.status, failure.headers, {"errors": "Injected failure"})
            return

        if not self.authorized(request):
            status, headers, payload = self.unauthorized(request)
        else:
            status, headers, payload = self.route(request)
        if failure is not None and failure.kind == "lose":
            status, headers, payload = failure.status, {}, {"errors": "Bad Gateway"}
        self._send(handler, status, headers, payload)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], payload: Any
    ) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
