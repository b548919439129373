"""Typed errors of the admin API; app.py maps each to one HTTP answer `{"detail": ...}`."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 400

    def __init__(self, detail: Any, *, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}  # more fields of the answer besides detail (409: who has it)


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    """No credentials, or credentials that do not verify."""

    status = 401

    def __init__(self, detail: Any = "authentication required", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(ApiError):
    """Authenticated, but this role may not do this (or a CSRF check failed)."""

    status = 403


class NotFound(ApiError):
    """No such thing in the principal's shop (another shop's things are not found either)."""

    status = 404

    def __init__(self, detail: Any = "not found", **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class Unprocessable(ApiError):
    """Well-formed but invalid: a template with an unknown slot, credentials a channel refuses."""

    status = 422


class TooManyRequests(ApiError):
    status = 429


class PaymentRequired(ApiError):
    """The shop's plan lacks this feature or its limit is reached (admin_api/plan_limits.py)."""

    status = 402


class BadGateway(ApiError):
    """A service we depend on (Stripe) failed or could not be reached."""

    status = 502


class Unavailable(ApiError):
    status = 503
