"""The tenant table and the frozen view of a tenant that the rest of the code passes around."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UtcDateTime, utcnow

ORDER_BACKENDS = ("demo", "shopify", "woocommerce")
# A fast, inexpensive model is right for short grounded answers; a tenant may choose another.
DEFAULT_LLM_MODEL = "claude-haiku-4-5"


class TenantRow(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    greeting: Mapped[str | None] = mapped_column(Text)
    return_window_days: Mapped[int] = mapped_column(Integer, default=30)
    order_backend: Mapped[str] = mapped_column(String(32), default="demo")
    # Knowledge answers: which Claude model, how long and how free its answers may be.
    llm_model: Mapped[str] = mapped_column(String(100), default=DEFAULT_LLM_MODEL)
    llm_max_tokens: Mapped[int] = mapped_column(Integer, default=400)
    llm_temperature: Mapped[float] = mapped_column(Float, default=0.2)
    # The web widget: a public key for the <script> tag (not a secret) and its look
    # ({"primary": "#hex", "text": "#hex", "title": str, "position": "right" | "left"}).
    widget_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    widget_theme: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Fernet token of a JSON object (backend and channel credentials); never logged.
    credentials_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


@dataclass(frozen=True)
class Tenant:
    id: str
    slug: str
    name: str
    greeting: str | None
    return_window_days: int
    order_backend: str
    credentials_encrypted: bytes | None
    llm_model: str = DEFAULT_LLM_MODEL
    llm_max_tokens: int = 400
    llm_temperature: float = 0.2
    widget_key: str | None = None
    widget_theme: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __repr__(self) -> str:  # keep the ciphertext out of logs and tracebacks
        return f"Tenant(id={self.id!r}, slug={self.slug!r}, backend={self.order_backend!r})"

    @classmethod
    def from_row(cls, row: TenantRow) -> Tenant:
        return cls(
            id=row.id,
            slug=row.slug,
            name=row.name,
            greeting=row.greeting,
            return_window_days=row.return_window_days,
            order_backend=row.order_backend,
            credentials_encrypted=row.credentials_encrypted,
            llm_model=row.llm_model,
            llm_max_tokens=row.llm_max_tokens,
            llm_temperature=row.llm_temperature,
            widget_key=row.widget_key,
            widget_theme=dict(row.widget_theme or {}),
        )
