"""The origin of the request being handled, for URLs computed later in background tasks.

Providers report deliveries to a status callback URL we give them with each send. Behind a
proxy PUBLIC_BASE_URL names the public origin; without it the origin a provider's webhook came
in on is used, which the app records here for each request (connectors/app.py) and the inbox
carries along with the message it schedules.
"""

from __future__ import annotations

from contextvars import ContextVar

request_origin: ContextVar[str | None] = ContextVar("request_origin", default=None)
