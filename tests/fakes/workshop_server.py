"""A stand-in for the workshop (bot/workshop.py) when Rasa's own findings are beside the
point: POST /validate with a bearer JWT answers that Rasa found nothing. The real workshop
runs in tests/bot/test_workshop.py and tests/admin_api/test_training_validate.py."""

from __future__ import annotations

from tests.fakes import FakeServer, RecordedRequest, Response


class QuietWorkshop(FakeServer):
    def authorized(self, request: RecordedRequest) -> bool:
        return request.headers.get("authorization", "").startswith("Bearer ey")

    def route(self, request: RecordedRequest) -> Response:
        if (request.method, request.path) != ("POST", "/validate"):
            return 404, {}, {"detail": "not found"}
        return 200, {}, {"errors": [], "complete": True}
