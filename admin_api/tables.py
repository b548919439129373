"""The admin service's tables: people and their roles per shop, invitations, browser sessions,
failed logins (rate limits), password resets and the audit log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UtcDateTime, utcnow

ROLES = ("owner", "designer", "agent")


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-case
    name: Mapped[str | None] = mapped_column(String(200))
    # argon2id (argon2-cffi's PasswordHasher); None until the invitation is accepted.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When someone showed they read the email's inbox (a mailed invitation or reset link, or
    # the operator's set-password); None: never, the account may be someone else's doing
    # (admin_api/people.py, invitations).
    email_verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class MembershipRow(Base):
    """A person's role in one shop."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "tenant_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # one of ROLES
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class InviteRow(Base):
    """A one-time link sent by email; only its hash is stored."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    invited_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The link went only to the invited inbox (SMTP_URL set), not to whoever invited: holding
    # it proves the person reads that mail.
    emailed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class AdminSessionRow(Base):
    """A browser's login: the cookie holds a random token, the row its hash; the CSRF token
    is derived from the session (double-submit)."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"), index=True)
    tenant_id: Mapped[str | None] = mapped_column(String(36))  # the shop chosen at login
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LoginFailureRow(Base):
    """One failed login, counted per email and per client address to slow guessing."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), index=True)  # "email:…" | "ip:…"
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class PasswordResetRow(Base):
    """A one-time link to choose a new password, mailed on request; only its hash is stored
    (admin_api/passwords.py)."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ResetRequestRow(Base):
    """One request for a reset link, counted per email (its hash: strangers type addresses
    here) and per client address, so the mail cannot be used to flood an inbox."""

    __tablename__ = "password_reset_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), index=True)  # "email:<sha256>" | "ip:…"
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AuditRow(Base):
    """Who changed what and when; before/after for settings and texts, never a secret."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_tenant_id_created_at", "tenant_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str | None] = mapped_column(String(36))  # None: platform operator actions
    actor: Mapped[str] = mapped_column(String(200))  # "user:<email>" | "key:<prefix>" | "cli"
    action: Mapped[str] = mapped_column(String(64))  # "settings.update", "response.put", ...
    target: Mapped[str | None] = mapped_column(String(1024))  # a conversation id fits (0014)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AnalyticsDayRow(Base):
    """A shop's figures for one finished calendar day (in time zone `tz`) on one channel,
    kept so a 90-day summary reads a few hundred rows instead of every message
    (admin_api/analytics.py). Channel "" marks the day as computed (a day without messages
    has only that row)."""

    __tablename__ = "analytics_days"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tz: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversations: Mapped[int] = mapped_column(Integer, default=0)
    handed_off: Mapped[int] = mapped_column(Integer, default=0)
    messages_in: Mapped[int] = mapped_column(Integer, default=0)
    messages_out: Mapped[int] = mapped_column(Integer, default=0)
    fallbacks: Mapped[int] = mapped_column(Integer, default=0)
    knowledge_answers: Mapped[int] = mapped_column(Integer, default=0)
    abstentions: Mapped[int] = mapped_column(Integer, default=0)
    # Conversations without a human that had a fallback or abstention; null on days rolled
    # up before it was counted (migration 0013), until a summary counts it.
    not_answered: Mapped[int | None] = mapped_column(Integer, default=0)


class AnalyticsIntentRow(Base):
    """How many visitor messages of a finished day on a channel Rasa gave each intent."""

    __tablename__ = "analytics_intents"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tz: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    intent: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
