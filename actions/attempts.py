"""Failed identity checks, counted across senders and sessions, with a lockout.

One row per key (a keyed hash of shop + email, shop + order number or shop + client
address, never the value itself).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UtcDateTime, utcnow


class VerificationFailureRow(Base):
    __tablename__ = "verification_failures"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
