"""Who is calling: a person through a browser session, a script through an API key, or a
platform operator. The shop always comes from here, never from the URL."""

from __future__ import annotations

from dataclasses import dataclass

from admin_api.errors import Forbidden

OWNER, DESIGNER, AGENT, OPERATOR = "owner", "designer", "agent", "operator"
# Which roles may call a route: the matrix of the issue (owner everything; designer texts,
# knowledge, training, conversations and analytics read; agent conversations and the inbox).
EVERYONE = frozenset({OWNER, DESIGNER, AGENT})
OWNERS = frozenset({OWNER})
DESIGNERS = frozenset({OWNER, DESIGNER})
OPERATORS = frozenset({OPERATOR})


@dataclass(frozen=True)
class Principal:
    role: str  # owner | designer | agent | operator
    actor: str  # for the audit log and jobs: "user:<email>", "key:<prefix>"
    tenant_id: str | None  # None only for the platform operator
    user_id: str | None = None  # a person (session or their own key); None for a shop key
    key_prefix: str | None = None  # set when an API key authenticated the call
    via_session: bool = False  # browser session: unsafe methods need the CSRF token

    @property
    def shop(self) -> str:
        """The shop every query is scoped to; an operator has none."""
        if self.tenant_id is None:
            raise Forbidden("this route needs a shop's principal, not the platform operator")
        return self.tenant_id

    def may(self, roles: frozenset[str]) -> bool:
        return self.role in roles
