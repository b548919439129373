"""Test-wide settings. Integration tests start the real processes (tests/integration/stack.py)."""

from __future__ import annotations

import os

# Unit tests build Settings from the environment; give them throwaway secrets.
os.environ.setdefault("SWITCHBOARD_CREDENTIALS_KEY", "lD3k5cRsZ0sJ2zv0cH2b1K0mD0vYt8bqz9vO3J2bX1c=")
os.environ.setdefault("RASA_TOKEN", "test-token")


def services() -> dict[str, str | None]:
    """PostgreSQL/Redis URLs that `make test` found answering (empty when not)."""
    return {
        "database_url": os.environ.get("TEST_DATABASE_URL") or None,
        "redis_url": os.environ.get("TEST_REDIS_URL") or None,
    }
