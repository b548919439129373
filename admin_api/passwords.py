"""Self-service password resets: someone who forgot their password asks for a link by email and
chooses a new password with it. Routes (admin_api/routes/passwords.py) call these functions;
nothing here knows about HTTP.

Asking (`count_request`, then `mail_link` off the request path) answers alike whether or not
the email has an account: the request is counted and recorded the same way for any address,
and looking the account up, making the link and talking to the mail server happen after the
answer has gone, so neither the answer nor its timing tells which emails have accounts.
Limits keep the form from flooding someone's inbox with reset mails without letting a
stranger who knows the address lock its owner out (both counted in a sliding hour,
`people.window_wait`, for unknown emails too, and the email by its SHA-256, since strangers
type addresses here):
- one client may ask 3 times for one email (REQUESTS_PER_EMAIL_AND_ADDRESS) and 10 times in
  all (REQUESTS_PER_ADDRESS); past either it gets 429 with Retry-After. This says nothing
  about the email: it counts only what that client itself asked. Counted per email alone
  (3 an hour, before), a stranger's 3 requests left the owner unable to reset for an hour.
- one inbox gets at most 6 reset mails an hour from all clients together (MAILS_PER_EMAIL),
  against strangers on many addresses. Past that a request is answered the same 202 and no
  mail goes out: a 429 there would tell a stranger that others had asked for this email.
  This cannot lock the owner out either: only mails that went out are counted (a request
  holds a place in the count while its mail is on its way, given back when nothing was sent:
  no account, no SMTP_URL, or the mail server failed), so while the inbox is at its limit the
  newest of those mails is less than an hour old, and its link (which replaced the ones
  before) still works. Counting failed sends too, an SMTP outage of a few minutes used up an
  inbox's hour and the person's reset after it was silently not sent.
Behind a proxy, TRUSTED_PROXIES must say so (connectors/proxies.py), or every request comes
from the proxy's address and all of them share one client's limits.

A link carries a 256-bit random token; the table keeps its SHA-256 only (as invitations do,
admin_api/people.py). It works once, for an hour, and a new request replaces the account's
unused one. Without SMTP_URL no link is made at all: unlike an invitation, whose link the
inviting owner may pass on, a reset link shown to whoever asked would hand any account to
anyone (an operator resets with `python -m admin_api users set-password` then). The link's
origin is ADMIN_PUBLIC_URL (else ADMIN_URL), never the request's Host: a stranger's request
chooses that header, and the account's owner would get a genuine token pointing at the
stranger's site.

Resetting (`reset`) sets the new password (the invitation's rules), marks the link used, ends
every session of the account (a stolen cookie must not outlive the password it was stolen
with), clears the email's failed logins and writes `user.password_reset` to the audit log of
each shop the person belongs to (the platform's, with no shop, for an operator).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from admin_api import mail, people
from admin_api.tables import (
    AdminSessionRow,
    AuditRow,
    MembershipRow,
    PasswordResetRow,
    ResetRequestRow,
    UserRow,
)
from core.db import utcnow
from core.settings import Settings

log = logging.getLogger(__name__)

RESET_TTL = timedelta(hours=1)
REQUEST_WINDOW = timedelta(hours=1)
REQUESTS_PER_EMAIL_AND_ADDRESS = 3  # requests one client may make for one email in the window
REQUESTS_PER_ADDRESS = 10  # requests one client address may make in the window
MAILS_PER_EMAIL = 6  # mails one inbox can be sent in the window, from every client together
KEEP_ENDED = timedelta(days=1)  # a used or expired link is kept this long: a reuse says 410


class InvalidReset(people.PeopleError):
    """No reset link has this token (never made, or replaced by a newer one)."""


class ResetGone(people.PeopleError):
    """The link was used already or has expired."""


class ResetThrottled(people.PeopleError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many reset requests: try again in {retry_after} seconds")
        self.retry_after = retry_after


@dataclass(frozen=True)
class IssuedReset:
    """A new reset link's token, which exists only here: put it in the mail, drop it."""

    id: int
    email: str
    token: str = field(repr=False)


# --- asking for a link ---------------------------------------------------------------------


def _request_keys(email: str, address: str) -> tuple[str, str, str]:
    """The keys a request counts under: its inbox, this client asking for it, this client."""
    digest = hashlib.sha256(people.normal_email(email).encode()).hexdigest()
    return f"email:{digest}", f"email:{digest} ip:{address}"[:300], f"ip:{address}"[:300]


async def count_request(sessions: async_sessionmaker, email: str,
                        address: str) -> int | None:
    """Count one request for a link to `email` from `address`: ResetThrottled (nothing
    counted) past the client's limits; else the place the mail takes in the inbox's count,
    for `mail_link` to give back when nothing is sent, or None when no mail may go out (the
    inbox had its MAILS_PER_EMAIL in the window: answered alike, module doc). The same for an
    email with or without an account."""
    now = utcnow()
    inbox, asked, client = _request_keys(email, address)
    async with sessions() as session:
        await session.execute(delete(ResetRequestRow).where(
            ResetRequestRow.created_at <= now - REQUEST_WINDOW))
        wait = await people.window_wait(
            session, ResetRequestRow,
            ((asked, REQUESTS_PER_EMAIL_AND_ADDRESS), (client, REQUESTS_PER_ADDRESS)),
            REQUEST_WINDOW)
        if wait is not None:
            await session.commit()
            raise ResetThrottled(wait)
        mail = await people.window_wait(session, ResetRequestRow,
                                        ((inbox, MAILS_PER_EMAIL),), REQUEST_WINDOW) is None
        # The inbox counts mails only: requests it did not get would keep it at its limit
        # after the last link it got has expired.
        place = ResetRequestRow(key=inbox, created_at=now) if mail else None
        session.add_all([ResetRequestRow(key=key, created_at=now) for key in (asked, client)])
        if place is not None:
            session.add(place)
        await session.flush()
        taken = place.id if place is not None else None
        await session.commit()
    return taken


async def _give_back(sessions: async_sessionmaker, place: int | None) -> None:
    """A mail that did not go out leaves the inbox's count."""
    if place is None:
        return
    async with sessions() as session:
        await session.execute(delete(ResetRequestRow).where(ResetRequestRow.id == place))
        await session.commit()


async def issue(sessions: async_sessionmaker, email: str) -> IssuedReset | None:
    """A new link for the account of `email`, replacing its unused one; None when the email
    has no account or the account is disabled."""
    email = people.normal_email(email)
    token = people.new_token()
    now = utcnow()
    async with sessions() as session:
        user = (await session.execute(select(UserRow).where(UserRow.email == email))
                ).scalar_one_or_none()
        if user is None or user.disabled:
            return None
        await session.execute(delete(PasswordResetRow).where(or_(
            PasswordResetRow.expires_at <= now - KEEP_ENDED,
            (PasswordResetRow.user_id == user.id) & PasswordResetRow.used_at.is_(None))))
        row = PasswordResetRow(user_id=user.id, token_hash=people.token_hash(token),
                               created_at=now, expires_at=now + RESET_TTL)
        session.add(row)
        await session.commit()
        return IssuedReset(row.id, user.email, token)


async def withdraw(sessions: async_sessionmaker, issued: IssuedReset) -> None:
    """Delete a link nobody got (the mail server failed)."""
    async with sessions() as session:
        await session.execute(delete(PasswordResetRow).where(PasswordResetRow.id == issued.id))
        await session.commit()


def link_origin(settings: Settings) -> str:
    """Where reset links point: the configured public origin, never a request's Host."""
    return settings.admin_public_url or settings.admin_url


async def mail_link(settings: Settings, sessions: async_sessionmaker, email: str,
                    place: int | None = None) -> bool:
    """Make a link for the account of `email` and mail it; False when nothing was sent (no
    account, a disabled one, no SMTP_URL, or the mail server failed: then the link is
    withdrawn). `place` (from `count_request`) leaves the inbox's count unless the mail went
    out. Runs after the request was answered, so it logs instead of raising, and never the
    address."""
    sent = False
    try:
        sent = await _mail_link(settings, sessions, email)
    finally:
        if not sent:
            await _give_back(sessions, place)
    return sent


async def _mail_link(settings: Settings, sessions: async_sessionmaker, email: str) -> bool:
    if not settings.smtp_url:
        log.info("password reset asked without SMTP_URL: nothing sent")
        return False
    issued = await issue(sessions, email)
    if issued is None:
        return False
    link = mail.reset_link(link_origin(settings), issued.token)
    try:
        await mail.send(settings, issued.email, "Reset your Switchboard password",
                        mail.reset_text(issued.email, link, "1 hour"))
    except mail.MailError:
        await withdraw(sessions, issued)
        log.warning("password reset mail failed: the inbox's count is given back")
        return False
    log.info("password reset link mailed")
    return True


class Outbox:
    """Reset mails on their way, off the request path: the answer never waits for (or
    depends on) the account lookup and the mail server. Held here so a task is not collected
    while it runs; one per app (`of`)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def of(cls, ctx: Any) -> Outbox:
        if not hasattr(ctx, "reset_outbox"):
            ctx.reset_outbox = cls()
        outbox: Outbox = ctx.reset_outbox
        return outbox

    def start(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(self._run(work), name="password-reset-mail")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _run(work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
        except Exception:
            log.exception("password reset mail failed")

    @property
    def pending(self) -> int:
        """Mails on their way now."""
        return len(self._tasks)

    async def settle(self) -> None:
        """Wait for the mails on their way now (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


# --- using a link --------------------------------------------------------------------------


async def _usable(session: AsyncSession, token: str) -> PasswordResetRow:
    row = (await session.execute(select(PasswordResetRow).where(
        PasswordResetRow.token_hash == people.token_hash(token)))).scalar_one_or_none()
    if row is None:
        raise InvalidReset("this reset link is not valid, or a newer one replaced it: ask "
                           "for a new one")
    if row.used_at is not None:
        raise ResetGone("this reset link was used already: log in, or ask for a new one")
    if row.expires_at <= utcnow():
        raise ResetGone("this reset link has expired: ask for a new one")
    return row


async def check(sessions: async_sessionmaker, token: str) -> tuple[str, datetime]:
    """The email a usable link resets and when it stops working (for the page to say whose
    password it sets); InvalidReset or ResetGone otherwise."""
    async with sessions() as session:
        row = await _usable(session, token)
        email = (await session.execute(select(UserRow.email).where(UserRow.id == row.user_id))
                 ).scalar_one()
        return str(email), row.expires_at


async def reset(sessions: async_sessionmaker, token: str, password: str) -> people.User:
    """Set the account's new password with a usable link: InvalidReset (404), ResetGone
    (410, also for a disabled account) or WeakPassword (422). The link is used up, the
    account's sessions end, its failed logins are cleared and each of its shops audits it."""
    async with sessions() as session:
        row = await _usable(session, token)
        reset_id, user_id = row.id, row.user_id
    hashed = await people.hash_password(password)
    now = utcnow()
    async with sessions() as session:
        taken = await session.execute(update(PasswordResetRow).where(
            PasswordResetRow.id == reset_id, PasswordResetRow.used_at.is_(None))
            .values(used_at=now))
        if not getattr(taken, "rowcount", 0):  # the same link used at the same moment
            raise ResetGone("this reset link was used already: log in, or ask for a new one")
        user = await session.get(UserRow, user_id)
        if user is None or user.disabled:
            await session.rollback()
            raise ResetGone("this account is disabled: ask the shop's owner")
        user.password_hash = hashed
        # The link came by mail: the address is the person's (admin_api/people.py, invitations).
        user.email_verified_at = user.email_verified_at or now
        ended = (await session.execute(select(func.count()).select_from(AdminSessionRow)
                                       .where(AdminSessionRow.user_id == user_id))).scalar_one()
        await session.execute(delete(AdminSessionRow).where(AdminSessionRow.user_id == user_id))
        # The person just proved they read the account's mail: a lockout someone else
        # caused must not keep them out.
        await people.forget_failures(session, user.email)
        shops = (await session.execute(select(MembershipRow.tenant_id).where(
            MembershipRow.user_id == user_id).order_by(MembershipRow.id))).scalars().all()
        session.add_all([AuditRow(tenant_id=tenant_id, actor=f"user:{user.email}",
                                  action="user.password_reset", target=user.id,
                                  after={"sessions_ended": int(ended)}, created_at=now)
                         for tenant_id in (shops or [None])])
        await session.commit()
        return people.User.of(user)
