"""A shop's own versions of what the bot says: overrides of the domain's `utter_*` responses.

Rasa renders responses through our NLG endpoint, which lays a shop's overrides over the
domain's defaults; deleting an override restores the default. No retraining is involved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UtcDateTime, utcnow


class ResponseOverrideRow(Base):
    __tablename__ = "response_overrides"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))  # "utter_greet"
    # Rasa's response variants: [{"text": str, "channel": str | None, "buttons": [...]}, ...]
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_by: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
