"""The key to Rasa's HTTP API: a short-lived JWT, minted by every process that calls it.

The gateway (connectors/rasa_client.py: /status, turns) and the admin service (admin_api/
rasa.py: an agent's reply and a resumed conversation appended to the tracker) both call Rasa's
HTTP API, which runs with --jwt-secret (bot/serve.py says why). The token goes in the
Authorization header, never as `?token=` in the URL: httpx's error texts quote the URL, and
so would every log line or response that showed one.
"""

from __future__ import annotations

import time

import jwt

from core.settings import Secret

# A token lives this long; callers mint a new one when less than half its life is left.
# Short, so one that leaks is soon worthless; long enough that minting is rare.
TOKEN_LIFETIME = 300


def rasa_api_token(jwt_key: Secret, lifetime: int = TOKEN_LIFETIME) -> str:
    """A JWT Rasa's HTTP API accepts (rasa/server.py `requires_auth`: role admin)."""
    payload = {"user": {"username": "switchboard-gateway", "role": "admin"},
               "exp": int(time.time()) + lifetime}
    return jwt.encode(payload, jwt_key.reveal(), algorithm="HS256")


class Authorization:
    """The Authorization header for Rasa's HTTP API (and the bot-side workshop, which checks
    the same JWTs): a token minted anew once less than half its life is left."""

    def __init__(self, jwt_key: Secret, lifetime: int = TOKEN_LIFETIME) -> None:
        self._jwt_key = jwt_key
        self._lifetime = lifetime
        self._token, self._renew_at = "", 0.0

    def headers(self) -> dict[str, str]:
        now = time.monotonic()
        if now >= self._renew_at:
            self._token = rasa_api_token(self._jwt_key, self._lifetime)
            self._renew_at = now + self._lifetime / 2
        return {"Authorization": f"Bearer {self._token}"}


def valid_bearer(header: str, jwt_key: Secret) -> bool:
    """How Rasa's side checks a caller (the workshop, the runtime's /models route): an
    `Authorization: Bearer <JWT>` header, HS256 with `jwt_key`, not expired."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    try:
        jwt.decode(token.strip(), jwt_key.reveal(), algorithms=["HS256"],
                   options={"require": ["exp"]})
    except jwt.PyJWTError:
        return False
    return True
