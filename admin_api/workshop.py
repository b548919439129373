"""The admin service's calls to the workshop (bot/workshop.py): Rasa's own checks of a shop's
drafts, run in Rasa's interpreter, since our 3.11 code never imports Rasa.

`POST {WORKSHOP_URL}/validate` with `{"files": {"<kind>/<name>.yml": "<yaml>"}}` answers
`{"errors": [{"file", "line", "message"}], "complete": bool}`. The key is the short-lived JWT
Rasa's HTTP API takes (core/rasa_http.py), in the Authorization header.

No retries: a check takes 1.5-2 s of Rasa's time (the workshop's first one a few more), the
designer asked for it and can ask again, and a second try after a timeout would only queue
behind the first. Not reachable, a timeout, or an answer that is not the expected JSON:
`WorkshopUnavailable`, which POST /training/validate answers as 503.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from admin_api.training.nodes import Problem
from core.rasa_http import Authorization
from core.settings import Secret

log = logging.getLogger(__name__)

# Connecting is loopback or the backend network: 2 s is long. A check runs 1.5-2 s, the first
# one after the workshop starts waits for Rasa's import too (about 5 s); checks run one at a
# time there, so a few designers at once queue.
TIMEOUT = httpx.Timeout(30.0, connect=2.0)


class WorkshopUnavailable(Exception):
    """The workshop did not check the drafts; the message says why, for the log and the 503."""


class WorkshopClient:
    def __init__(self, base_url: str, jwt_key: Secret,
                 client: httpx.AsyncClient | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._authorization = Authorization(jwt_key)
        self._client = client  # made at first use: most admin processes never validate

    async def validate(self, files: Mapping[str, str]) -> list[Problem]:
        """Rasa's findings about the drafts ({"nlu/x.yml": content}) over the base."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT)
        try:
            answer = await self._client.post(f"{self._base}/validate", json={"files": dict(files)},
                                             headers=self._authorization.headers())
        except httpx.HTTPError as exc:
            raise WorkshopUnavailable(f"the workshop is not reachable ({type(exc).__name__})"
                                      ) from None
        if answer.status_code != 200:
            raise WorkshopUnavailable(f"the workshop answered {answer.status_code}")
        try:
            return [_problem(item) for item in answer.json()["errors"]]
        except (ValueError, KeyError, TypeError):
            raise WorkshopUnavailable("the workshop's answer is not what it should be") from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _problem(item: Any) -> Problem:
    if not isinstance(item, dict):
        raise TypeError("a finding is an object")
    return Problem(str(item["file"]), int(item["line"]), str(item["message"]))
