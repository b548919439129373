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
DEFAULT_VERIFICATION_EXPIRY_MINUTES = 30
DEFAULT_RATE_PER_CLIENT = 30  # a person types a few messages a minute; a script hundreds
DEFAULT_RATE_PER_CONVERSATION = 20
DEFAULT_RATE_PER_SHOP = 600


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
    # The public edge (issue 12). A verified order is forgotten after this many quiet minutes.
    verification_expiry_minutes: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_VERIFICATION_EXPIRY_MINUTES,
        server_default=str(DEFAULT_VERIFICATION_EXPIRY_MINUTES))
    # Messages a minute (token buckets, connectors/limits.py): per client address, per
    # conversation and for the whole shop.
    rate_per_client: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_RATE_PER_CLIENT, server_default=str(DEFAULT_RATE_PER_CLIENT))
    rate_per_conversation: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_RATE_PER_CONVERSATION,
        server_default=str(DEFAULT_RATE_PER_CONVERSATION))
    rate_per_shop: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_RATE_PER_SHOP, server_default=str(DEFAULT_RATE_PER_SHOP))
    # LLM tokens (input + output) a calendar month; None: no limit. Past it answers are
    # extractive (knowledge/budget.py); the spend is recorded per answer (llm_usage).
    llm_monthly_token_budget: Mapped[int | None] = mapped_column(Integer)
    # The operator side (issue 13): days after which conversations are deleted (None: kept),
    # opening hours ({"timezone": "Europe/Berlin", "days": {"mon": [["09:00", "17:00"]], ...}})
    # and where people reach the shop.
    retention_days: Mapped[int | None] = mapped_column(Integer)
    opening_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    support_email: Mapped[str | None] = mapped_column(String(254))
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
    verification_expiry_minutes: int = DEFAULT_VERIFICATION_EXPIRY_MINUTES
    rate_per_client: int = DEFAULT_RATE_PER_CLIENT
    rate_per_conversation: int = DEFAULT_RATE_PER_CONVERSATION
    rate_per_shop: int = DEFAULT_RATE_PER_SHOP
    llm_monthly_token_budget: int | None = None
    retention_days: int | None = None
    opening_hours: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    support_email: str | None = None

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
            verification_expiry_minutes=row.verification_expiry_minutes,
            rate_per_client=row.rate_per_client,
            rate_per_conversation=row.rate_per_conversation,
            rate_per_shop=row.rate_per_shop,
            llm_monthly_token_budget=row.llm_monthly_token_budget,
            retention_days=row.retention_days,
            opening_hours=dict(row.opening_hours or {}),
            support_email=row.support_email,
        )
