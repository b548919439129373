"""Process settings, read once from the environment into a frozen object.

A missing secret fails at start-up with a message naming the variable; it never silently
becomes an empty string. `make run` writes development secrets to `var/dev.env` once, so the
embedded default still needs no configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A required setting is missing or malformed."""


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(
            f"{name} is not set. `make run` creates development values in var/dev.env; "
            f"in production set it in the environment."
        )
    return value


def async_database_url(url: str) -> str:
    """Map a plain DATABASE_URL to the async driver we use for it."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    database_url: str  # SQLAlchemy async URL
    redis_url: str | None
    credentials_key: str  # Fernet key for tenant credentials at rest
    rasa_url: str
    rasa_token: str
    action_server_url: str
    rasa_timeout: float  # seconds the gateway waits for Rasa's answer to one turn
    # Knowledge answers. No key: answers are extractive (the best passage), never an error.
    anthropic_api_key: str | None = field(default=None, repr=False)
    anthropic_base_url: str | None = None  # tests point this at a local fake
    llm_timeout: float = 8.0  # seconds for one Messages API call, retries included
    # Channels. Providers sign the public URL they call: behind a proxy, name it here.
    public_base_url: str | None = None
    twilio_api_url: str = "https://api.twilio.com"  # tests and `make run` use local stand-ins
    graph_api_url: str = "https://graph.facebook.com"
    send_attempts: int = 4  # tries per outbound message on transient provider failures

    @property
    def widget_secret(self) -> bytes:
        """Key for signed web-visitor tokens, derived from the credentials key (one secret
        fewer to manage; rotating that key also ends old widget sessions)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        first = self.credentials_key.split(",")[0].strip().encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                    info=b"switchboard widget visitor tokens").derive(first)

    @property
    def knowledge_dir(self) -> Path:
        """Per-tenant FAISS and lexical index files."""
        return self.var_dir / "knowledge"

    @property
    def models_dir(self) -> Path:
        """Models derived on this machine from packaged weights (the ONNX query encoder)."""
        return self.var_dir / "models"

    @property
    def tracker_store_url(self) -> str:
        """Where Rasa keeps its `events` table (bot/stores.py picks the same place)."""
        if self.uses_embedded_storage:
            return f"sqlite+aiosqlite:///{self.var_dir / 'rasa-tracker.db'}"
        return self.database_url

    @property
    def uses_embedded_storage(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        var_dir = Path(env.get("SWITCHBOARD_VAR_DIR", str(ROOT / "var"))).resolve()
        raw_db = env.get("DATABASE_URL", "").strip()
        database_url = (
            async_database_url(raw_db)
            if raw_db
            else f"sqlite+aiosqlite:///{var_dir / 'switchboard.db'}"
        )
        try:
            rasa_timeout = float(env.get("RASA_TIMEOUT", "30"))
            llm_timeout = float(env.get("LLM_TIMEOUT", "8"))
        except ValueError as exc:
            raise ConfigError(f"RASA_TIMEOUT and LLM_TIMEOUT are seconds: {exc}") from None
        return cls(
            var_dir=var_dir,
            database_url=database_url,
            redis_url=env.get("REDIS_URL", "").strip() or None,
            credentials_key=_required(env, "SWITCHBOARD_CREDENTIALS_KEY"),
            rasa_url=env.get("RASA_URL", "http://127.0.0.1:5005").rstrip("/"),
            rasa_token=_required(env, "RASA_TOKEN"),
            action_server_url=env.get("ACTION_SERVER_URL", "http://127.0.0.1:5055").rstrip("/"),
            rasa_timeout=rasa_timeout,
            anthropic_api_key=env.get("ANTHROPIC_API_KEY", "").strip() or None,
            anthropic_base_url=env.get("ANTHROPIC_BASE_URL", "").strip() or None,
            llm_timeout=llm_timeout,
            public_base_url=env.get("PUBLIC_BASE_URL", "").strip().rstrip("/") or None,
            twilio_api_url=env.get("TWILIO_API_URL", "https://api.twilio.com").rstrip("/"),
            graph_api_url=env.get("GRAPH_API_URL", "https://graph.facebook.com").rstrip("/"),
            send_attempts=max(1, int(env.get("SEND_ATTEMPTS", "4") or 4)),
        )
