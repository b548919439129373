"""The gateway's internal route `POST /internal/agent-replies`, over real HTTP, recorded: what
the admin service hands over (body and Authorization header), answered as the gateway does
(202 `{"accepted": true}`; `status` makes it answer something else, e.g. 503 or 404)."""

from __future__ import annotations

from typing import Any

from tests.fakes import FakeServer, RecordedRequest, Response

PATH = "/internal/agent-replies"


class GatewayFake(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.status = 202
        self.received: list[tuple[dict[str, Any], str | None]] = []  # (body, Authorization)

    def bodies(self, token: str | None = None) -> list[dict[str, Any]]:
        """What the route took (only calls with this bearer token if given)."""
        return [body for body, authorization in self.received
                if token is None or authorization == f"Bearer {token}"]

    def authorized(self, request: RecordedRequest) -> bool:
        return True  # the admin's token is the test's to check, in `received`

    def route(self, request: RecordedRequest) -> Response:
        status = self.status if request.method == "POST" and request.path == PATH else 404
        if status >= 300:
            return status, {}, {"detail": "refused"}
        self.received.append((request.json(), request.headers.get("authorization")))
        return status, {}, {"accepted": True}
