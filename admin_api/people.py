"""People of the admin service: users, their role per shop, invitations, browser sessions and
the login rate limits. Routes (admin_api/routes/users.py, session.py, operator.py) and the CLI
(admin_api/__main__.py) call these functions; nothing here knows about HTTP.

Passwords are argon2id (argon2-cffi's PasswordHasher with its RFC 9106 defaults), hashed and
verified in a worker thread (tens of milliseconds of CPU each) so the event loop keeps
serving. An unknown email is verified against a dummy hash too, so a login takes as long, and
answers alike, whether or not the email has an account (no user enumeration).

Invitation links and session cookies carry 256-bit random tokens; the tables keep only their
SHA-256 (a fast hash is right for random tokens, as for API keys): a copy of the database
opens no session and accepts no invitation. An invitation is good once, for 7 days.

Accounts are global (one person, many shops), and without SMTP_URL an invitation's link goes
to the inviting owner to pass on, so whoever opens it makes the account of the invited email:
an owner could make an account in someone else's name, which that person would meet (or its
maker would keep using) when another shop invites them. So an account records whether its
email was proven (`email_verified_at`): by accepting an invitation whose link went only to
that inbox (`emailed`), by a mailed reset link (admin_api/passwords.py), or by the operator's
set-password. An invitation for an email whose account was never proven is accepted only
through a mailed link (which proves it: with the account's password, or choosing the first
one of an account that has none); through a handed-over link it makes and joins nothing
(`UnprovenAccount`, 403) until the person proves the address with a reset mail. An account an
owner made through a handed-over link works in that shop as before.

What the invitation page is told (`pending_invitation`) is what the person holding the link
needs: whether the email has an account, only when the link was mailed (the holder is the
invitee). A handed-over link may be in the inviting owner's hands, and "this email has an
account" is not theirs to learn by opening it: the page asks the person instead.

Sessions end after 12 idle hours or 7 days in any case. The CSRF token of a session is an HMAC
of its token (`csrf_token`), so no column holds it and it cannot be computed without the
cookie and the server's key.

Failed logins are counted per email and client address together and per address alone, over
a sliding 15 minutes (5 for one email from one address, 20 from one address); past either the
login answers 429 with Retry-After, before a password is checked. A successful login clears
the failures of its email from its address. What this trades: counted per email alone (as
before), five wrong passwords from anywhere locked the owner out for 15 minutes, even with the
right password, and one address could keep four owners locked out indefinitely. Now an owner
is never refused for failures made from other addresses; the price is that someone with many
addresses (a botnet) gets 5 guesses per address per 15 minutes at one account instead of 5 in
all. Argon2id and a 10-character minimum keep such guessing slow; a CAPTCHA or a second
factor would be the answer to a large one, not a lockout. Behind a proxy, TRUSTED_PROXIES
must name it (connectors/proxies.py), or every login shares its address; an IPv6 client
counts by its /64.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from admin_api.tables import (
    ROLES,
    AdminSessionRow,
    InviteRow,
    LoginFailureRow,
    MembershipRow,
    UserRow,
)
from core.db import utcnow
from tenants.models import TenantRow

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")  # a shop's short name, as tenants/__main__.py
INVITE_TTL = timedelta(days=7)
SESSION_IDLE = timedelta(hours=12)
SESSION_ABSOLUTE = timedelta(days=7)
LAST_SEEN_EVERY = timedelta(minutes=1)  # a session's last_seen_at is written at most this often
LOGIN_WINDOW = timedelta(minutes=15)
FAILURES_PER_EMAIL = 5  # for one email from one address
FAILURES_PER_ADDRESS = 20
MIN_PASSWORD = 10
MAX_PASSWORD = 1000  # argon2 takes any length; this bounds the work one request can ask for

_HASHER = PasswordHasher()  # argon2id


class PeopleError(Exception):
    """A refusal whose message can be shown to the caller as is."""


class InvalidInvitation(PeopleError):
    """No invitation has this token."""


class InvitationGone(PeopleError):
    """The invitation was used already or has expired."""


class AccountExists(PeopleError):
    """The invited email has an account with a password: accepting needs that password."""


class UnprovenAccount(PeopleError):
    """The invited email has an account whose address was never proven, and this link was
    not mailed: joining waits for the proof (a reset mail)."""


class AlreadyMember(PeopleError):
    pass


class UnknownMember(PeopleError):
    pass


class LastOwner(PeopleError):
    """A shop always keeps one owner: the last one cannot be removed or demoted."""


class UnknownShop(PeopleError):
    pass


class UnknownUser(PeopleError):
    pass


class ShopExists(PeopleError):
    pass


class LoginRefused(PeopleError):
    """Unknown email, wrong password or disabled user: one message for all."""

    def __init__(self) -> None:
        super().__init__("wrong email or password")


class NotAMember(PeopleError):
    """The password was right but the user has no role in the shop asked for (or in any)."""


class LoginThrottled(PeopleError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins: try again in {retry_after} seconds")
        self.retry_after = retry_after


class WeakPassword(PeopleError):
    pass


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str | None
    is_operator: bool
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, row: UserRow) -> User:
        return cls(id=row.id, email=row.email, name=row.name, is_operator=bool(row.is_operator),
                   created_at=row.created_at, last_login_at=row.last_login_at)


@dataclass(frozen=True)
class Member:
    """A user's role in one shop."""

    user_id: str
    email: str
    name: str | None
    role: str
    since: datetime
    last_login_at: datetime | None


@dataclass(frozen=True)
class Invitation:
    id: int
    tenant_id: str
    email: str
    role: str
    invited_by: str | None
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    emailed: bool = False  # the link went only to the invited inbox

    @property
    def public_id(self) -> str:
        """How the API names a pending invitation next to members' user ids."""
        return f"invite-{self.id}"

    @classmethod
    def of(cls, row: InviteRow) -> Invitation:
        return cls(id=row.id, tenant_id=row.tenant_id, email=row.email, role=row.role,
                   invited_by=row.invited_by, created_at=row.created_at,
                   expires_at=row.expires_at, accepted_at=row.accepted_at,
                   emailed=bool(row.emailed))


@dataclass(frozen=True)
class IssuedInvitation:
    """A new invitation and its token, which exists only here: put it in the link, drop it."""

    invitation: Invitation
    token: str = field(repr=False)


@dataclass(frozen=True)
class ShopRole:
    tenant_id: str
    slug: str
    name: str
    role: str


@dataclass(frozen=True)
class Session:
    """A live browser session: who, and in which shop with which role (None and None: the
    platform operator, who has no shop)."""

    id: int
    user: User
    shop: ShopRole | None
    expires_at: datetime

    @property
    def role(self) -> str:
        return self.shop.role if self.shop else "operator"


@dataclass(frozen=True)
class IssuedSession:
    session: Session
    token: str = field(repr=False)  # the cookie's value


# --- tokens and passwords ------------------------------------------------------------------


def clean(text: str) -> str:
    """`text` without what a database cannot store: lone surrogates (the CLI's arguments may
    hold them) become '?', NUL characters (PostgreSQL's text refuses them) are dropped. Such
    input is then answered like any wrong value, never with a 500."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def normal_email(email: str) -> str:
    return clean(email).strip().lower()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(clean(token).encode()).hexdigest()


def csrf_token(key: bytes, session_token: str) -> str:
    """The CSRF token of a session: the page sends it as X-CSRF-Token on unsafe requests."""
    digest = hmac.new(key, session_token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_password_rules(password: str) -> None:
    if clean(password) != password:
        raise WeakPassword("a password must be text (no lone surrogate characters)")
    if len(password) < MIN_PASSWORD:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise WeakPassword(f"a password has at most {MAX_PASSWORD} characters")


async def hash_password(password: str) -> str:
    check_password_rules(password)
    return await asyncio.to_thread(_HASHER.hash, password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(16))


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def password_matches(stored: str | None, password: str) -> bool:
    """Does `password` match the stored hash? With no hash (unknown email, invitation not
    accepted) a dummy hash is verified, so both cases cost the same time."""
    if len(password) > MAX_PASSWORD or clean(password) != password:
        return False
    return await asyncio.to_thread(_verify, stored, password)


# --- users ---------------------------------------------------------------------------------


async def _user_by_email(session: AsyncSession, email: str) -> UserRow | None:
    return (await session.execute(select(UserRow).where(UserRow.email == normal_email(email)))
            ).scalar_one_or_none()


async def find_user(sessions: async_sessionmaker, email: str) -> User | None:
    async with sessions() as session:
        row = await _user_by_email(session, email)
        return User.of(row) if row else None


async def set_password(sessions: async_sessionmaker, email: str, password: str,
                       *, create: bool = False) -> User:
    """Set a user's password (the CLI; the demo bootstrap). `create` makes the user when the
    email has none; UnknownUser otherwise. The user's sessions end: a new password logs
    every browser out. The operator who sets it vouches for the address: the account counts
    as proven (module doc)."""
    hashed = await hash_password(password)
    async with sessions() as session:
        row = await _user_by_email(session, email)
        if row is None:
            if not create:
                raise UnknownUser(f"no user with the email {normal_email(email)}")
            row = UserRow(id=str(uuid.uuid4()), email=normal_email(email), created_at=utcnow())
            session.add(row)
        elif row.password_hash is not None and await password_matches(row.password_hash,
                                                                       password):
            row.email_verified_at = row.email_verified_at or utcnow()
            await session.commit()
            return User.of(row)  # the same password: keep the hash and the sessions
        row.password_hash = hashed
        row.email_verified_at = row.email_verified_at or utcnow()
        await session.flush()
        await session.execute(delete(AdminSessionRow).where(AdminSessionRow.user_id == row.id))
        await session.commit()
        return User.of(row)


async def make_operator(sessions: async_sessionmaker, email: str) -> User:
    """Mark (or create) a user as a platform operator; a new user still needs a password."""
    async with sessions() as session:
        row = await _user_by_email(session, email)
        if row is None:
            row = UserRow(id=str(uuid.uuid4()), email=normal_email(email), created_at=utcnow())
            session.add(row)
        row.is_operator = True
        await session.commit()
        return User.of(row)


async def ensure_member(sessions: async_sessionmaker, tenant_id: str, email: str,
                        role: str) -> Member:
    """Give an existing user this role in the shop (the demo bootstrap)."""
    async with sessions() as session:
        user = await _user_by_email(session, email)
        if user is None:
            raise UnknownUser(f"no user with the email {normal_email(email)}")
        membership = (await session.execute(select(MembershipRow).where(
            MembershipRow.user_id == user.id, MembershipRow.tenant_id == tenant_id))
        ).scalar_one_or_none()
        if membership is None:
            membership = MembershipRow(user_id=user.id, tenant_id=tenant_id, role=role,
                                       created_at=utcnow())
            session.add(membership)
        membership.role = role
        await session.commit()
        return Member(user.id, user.email, user.name, role, membership.created_at,
                      user.last_login_at)


# --- shops ---------------------------------------------------------------------------------


async def shop_by_slug(sessions: async_sessionmaker, slug: str) -> TenantRow:
    async with sessions() as session:
        row = (await session.execute(select(TenantRow).where(TenantRow.slug == clean(slug)))
               ).scalar_one_or_none()
    if row is None:
        raise UnknownShop(f"no shop called {slug!r}")
    return row


async def add_shop(sessions: async_sessionmaker, slug: str, name: str) -> str:
    """A new shop (a fresh uuid, every setting at its default); ShopExists for a taken slug.
    Its people come by invitation."""
    tenant_id = str(uuid.uuid4())
    async with sessions() as session:
        taken = (await session.execute(select(TenantRow.id).where(TenantRow.slug == slug))
                 ).first()
        if taken is not None:
            raise ShopExists(f"a shop called {slug!r} exists already")
        session.add(TenantRow(id=tenant_id, slug=slug, name=clean(name).strip()))
        try:
            await session.commit()
        except IntegrityError:
            raise ShopExists(f"a shop called {slug!r} exists already") from None
    return tenant_id


async def shop_name(sessions: async_sessionmaker, tenant_id: str) -> str:
    async with sessions() as session:
        name = (await session.execute(select(TenantRow.name).where(TenantRow.id == tenant_id))
                ).scalar_one_or_none()
    return str(name or "your shop")


async def shops_of(sessions: async_sessionmaker, user_id: str) -> list[ShopRole]:
    """The shops a user has a role in, oldest membership first."""
    async with sessions() as session:
        rows = await session.execute(
            select(TenantRow.id, TenantRow.slug, TenantRow.name, MembershipRow.role)
            .join(MembershipRow, MembershipRow.tenant_id == TenantRow.id)
            .where(MembershipRow.user_id == user_id)
            .order_by(MembershipRow.created_at, MembershipRow.id))
        return [ShopRole(*row) for row in rows.all()]


# --- members -------------------------------------------------------------------------------


async def members(sessions: async_sessionmaker, tenant_id: str) -> list[Member]:
    async with sessions() as session:
        rows = await session.execute(
            select(UserRow, MembershipRow)
            .join(MembershipRow, MembershipRow.user_id == UserRow.id)
            .where(MembershipRow.tenant_id == tenant_id)
            .order_by(MembershipRow.created_at, MembershipRow.id))
        return [Member(user.id, user.email, user.name, membership.role, membership.created_at,
                       user.last_login_at) for user, membership in rows.tuples()]


async def _membership(session: AsyncSession, tenant_id: str,
                      user_id: str) -> tuple[UserRow, MembershipRow]:
    found = (await session.execute(
        select(UserRow, MembershipRow).join(MembershipRow, MembershipRow.user_id == UserRow.id)
        .where(MembershipRow.tenant_id == tenant_id, MembershipRow.user_id == user_id)
        .with_for_update())).tuples().first()
    if found is None:
        raise UnknownMember("no such member in your shop")
    return found


async def _keep_an_owner(session: AsyncSession, tenant_id: str, leaving: str) -> None:
    """LastOwner when `leaving` is the shop's only owner. The owners' rows are locked (on
    PostgreSQL) so two owners demoting each other at once cannot both succeed."""
    owners = (await session.execute(
        select(MembershipRow.user_id).where(MembershipRow.tenant_id == tenant_id,
                                            MembershipRow.role == "owner")
        .with_for_update())).scalars().all()
    if set(owners) <= {leaving}:
        raise LastOwner("a shop needs an owner: make someone else owner first")


async def set_role(sessions: async_sessionmaker, tenant_id: str, user_id: str,
                   role: str) -> tuple[Member, str]:
    """Change a member's role; returns the member and the role before."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    async with sessions() as session:
        user, membership = await _membership(session, tenant_id, user_id)
        before = membership.role
        if before == "owner" and role != "owner":
            await _keep_an_owner(session, tenant_id, user_id)
        membership.role = role
        await session.commit()
        return Member(user.id, user.email, user.name, role, membership.created_at,
                      user.last_login_at), before


async def remove_member(sessions: async_sessionmaker, tenant_id: str, user_id: str) -> Member:
    """Take a person's role in the shop away; their sessions in this shop end at once."""
    async with sessions() as session:
        user, membership = await _membership(session, tenant_id, user_id)
        if membership.role == "owner":
            await _keep_an_owner(session, tenant_id, user_id)
        await session.delete(membership)
        await session.execute(delete(AdminSessionRow).where(
            AdminSessionRow.user_id == user_id, AdminSessionRow.tenant_id == tenant_id))
        await session.commit()
        return Member(user.id, user.email, user.name, membership.role, membership.created_at,
                      user.last_login_at)


# --- invitations ---------------------------------------------------------------------------


async def invite(sessions: async_sessionmaker, tenant_id: str, email: str, role: str,
                 invited_by: str | None, *, emailed: bool = False) -> IssuedInvitation:
    """A one-time invitation to the shop with this role. Inviting an email again replaces its
    pending invitation (the old link stops working); a member already: AlreadyMember.
    `emailed`: the link will go only to the invited inbox (the caller withdraws the
    invitation if the mail fails)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    email = normal_email(email)
    token = new_token()
    now = utcnow()
    async with sessions() as session:
        member = (await session.execute(
            select(MembershipRow.id).join(UserRow, UserRow.id == MembershipRow.user_id)
            .where(UserRow.email == email, MembershipRow.tenant_id == tenant_id))).first()
        if member is not None:
            raise AlreadyMember(f"{email} is a member of this shop already")
        await session.execute(delete(InviteRow).where(
            InviteRow.tenant_id == tenant_id, InviteRow.email == email,
            InviteRow.accepted_at.is_(None)))
        row = InviteRow(tenant_id=tenant_id, email=email, role=role, token_hash=token_hash(token),
                        invited_by=invited_by, created_at=now, expires_at=now + INVITE_TTL,
                        emailed=emailed)
        session.add(row)
        await session.commit()
        return IssuedInvitation(Invitation.of(row), token)


async def pending_invitations(sessions: async_sessionmaker, tenant_id: str) -> list[Invitation]:
    """Invitations not accepted yet (expired ones too: the owner sees they need resending)."""
    async with sessions() as session:
        rows = await session.execute(select(InviteRow).where(
            InviteRow.tenant_id == tenant_id, InviteRow.accepted_at.is_(None))
            .order_by(InviteRow.created_at, InviteRow.id))
        return [Invitation.of(row) for row in rows.scalars()]


def invitation_number(public_id: str) -> int | None:
    """`invite-12` → 12; None for anything else (a user id)."""
    prefix, _, number = public_id.partition("-")
    return int(number) if prefix == "invite" and number.isdigit() else None


async def _pending(session: AsyncSession, tenant_id: str, public_id: str) -> InviteRow:
    number = invitation_number(public_id)
    row = None
    if number is not None:
        row = (await session.execute(select(InviteRow).where(
            InviteRow.id == number, InviteRow.tenant_id == tenant_id,
            InviteRow.accepted_at.is_(None)))).scalar_one_or_none()
    if row is None:
        raise UnknownMember("no such invitation in your shop")
    return row


async def change_invitation(sessions: async_sessionmaker, tenant_id: str, public_id: str,
                            role: str) -> tuple[Invitation, str]:
    async with sessions() as session:
        row = await _pending(session, tenant_id, public_id)
        before = row.role
        row.role = role
        await session.commit()
        return Invitation.of(row), before


async def cancel_invitation(sessions: async_sessionmaker, tenant_id: str,
                            public_id: str) -> Invitation:
    async with sessions() as session:
        row = await _pending(session, tenant_id, public_id)
        await session.delete(row)
        await session.commit()
        return Invitation.of(row)


async def pending_invitation(sessions: async_sessionmaker,
                             token: str) -> tuple[Invitation, bool | None]:
    """The invitation a link names, still usable, and whether its email has an account (then
    accepting takes that account's password, `accept`): what the invitation page shows. None
    for a link that was not mailed: its holder may be the inviting owner (module doc)."""
    async with sessions() as session:
        row = await _usable(session, token)
        if not row.emailed:
            return Invitation.of(row), None
        existing = await _user_by_email(session, row.email)
        return Invitation.of(row), existing is not None and existing.password_hash is not None


async def _usable(session: AsyncSession, token: str) -> InviteRow:
    row = (await session.execute(select(InviteRow).where(
        InviteRow.token_hash == token_hash(token)))).scalar_one_or_none()
    if row is None:
        raise InvalidInvitation("this invitation link is not valid: ask for a new one")
    if row.accepted_at is not None:
        raise InvitationGone("this invitation was used already: log in instead")
    if row.expires_at <= utcnow():
        raise InvitationGone("this invitation has expired: ask the shop's owner for a new one")
    return row


async def accept(sessions: async_sessionmaker, token: str, password: str,
                 name: str | None, address: str = "unknown") -> tuple[User, Invitation]:
    """Accept an invitation: the email's user gets the role in the shop (and is created, with
    this password, when new). An email that has an account already must give its password:
    the link only proves the holder can read the mail, and whoever invited may see the link
    (no SMTP), so it must not reset anyone's password. An account whose email was never
    proven joins only through a mailed link (UnprovenAccount otherwise), which proves it."""
    async with sessions() as session:
        row = await _usable(session, token)
        existing = await _user_by_email(session, row.email)
        invitation = Invitation.of(row)
    if existing is not None and existing.email_verified_at is None and not invitation.emailed:
        raise UnprovenAccount(
            f"{invitation.email} has a Switchboard account whose address was never confirmed "
            "by mail, so it cannot join another shop through a link passed on by hand. Ask for "
            "a password reset link on the login page (it goes to that address), choose the "
            "password with it, then open this invitation again.")
    hashed = None
    if existing is not None and existing.password_hash is not None:
        # The account's password, asked here as at a login and limited as logins are: the
        # inviting owner holds the link (no SMTP) and could otherwise guess at it unchecked.
        async with sessions() as session:
            await _throttle(session, invitation.email, address)
        if not await password_matches(existing.password_hash, password):
            await _failed(sessions, invitation.email, address)
            raise AccountExists(f"{invitation.email} has an account already: enter its password "
                                "to join this shop (forgot it? ask for a reset link on the "
                                "login page)")
    else:
        hashed = await hash_password(password)
    now = utcnow()
    async with sessions() as session:
        taken = await session.execute(update(InviteRow).where(
            InviteRow.id == invitation.id, InviteRow.accepted_at.is_(None))
            .values(accepted_at=now))
        if not getattr(taken, "rowcount", 0):
            raise InvitationGone("this invitation was used already: log in instead")
        user = await _user_by_email(session, invitation.email)
        if user is None:
            user = UserRow(id=str(uuid.uuid4()), email=invitation.email, created_at=now)
            session.add(user)
        if hashed is not None:
            user.password_hash = hashed
        if invitation.emailed:  # the link reached this inbox only: the address is proven
            user.email_verified_at = user.email_verified_at or now
        if name and name.strip():
            user.name = clean(name).strip()[:200]
        await session.flush()
        membership = (await session.execute(select(MembershipRow).where(
            MembershipRow.user_id == user.id, MembershipRow.tenant_id == invitation.tenant_id))
        ).scalar_one_or_none()
        if membership is None:
            session.add(MembershipRow(user_id=user.id, tenant_id=invitation.tenant_id,
                                      role=invitation.role, created_at=now))
        else:
            membership.role = invitation.role
        try:
            await session.commit()
        except IntegrityError:  # the same user accepting two links at the same moment
            await session.rollback()
            raise InvitationGone("this invitation was used already: log in instead") from None
        return User.of(user), replace(invitation, accepted_at=now)


# --- logins and sessions -------------------------------------------------------------------


def _failure_keys(email: str, address: str) -> tuple[str, str]:
    """The keys a failure counts under: this email from this address, and this address. The
    address comes first, so an email at its longest (254) still leaves it whole in the column
    (String(300)); an IPv6 address with its zone is at most ~45 characters."""
    return f"ip:{address} email:{email}"[:300], f"ip:{address}"[:300]


async def forget_failures(session: AsyncSession, email: str) -> None:
    """Forget the failed logins of `email` from every address, in the caller's transaction
    (its password was just reset through its mail: admin_api/passwords.py)."""
    await session.execute(delete(LoginFailureRow).where(
        LoginFailureRow.key.endswith(f" email:{normal_email(email)}", autoescape=True)))


async def _throttle(session: AsyncSession, email: str, address: str) -> None:
    pair, alone = _failure_keys(email, address)
    wait = await window_wait(session, LoginFailureRow,
                             ((pair, FAILURES_PER_EMAIL), (alone, FAILURES_PER_ADDRESS)),
                             LOGIN_WINDOW)
    if wait is not None:
        raise LoginThrottled(wait)


async def window_wait(session: AsyncSession, table: Any,
                      limits: Iterable[tuple[str, int]], window: timedelta) -> int | None:
    """Seconds until one more try is allowed, when a key already has its limit of rows
    (`table`: a `key` and a `created_at` column) in the sliding window; None when none does.
    Failed logins here and reset requests (admin_api/passwords.py) are counted this way."""
    now = utcnow()
    for key, limit in limits:
        times = (await session.execute(
            select(table.created_at)
            .where(table.key == key, table.created_at > now - window)
            .order_by(table.created_at.desc()).limit(limit))).scalars().all()
        if len(times) >= limit:
            # When the limit-th latest row leaves the window, one more try is allowed.
            wait = times[limit - 1] + window - now
            return max(1, int(wait.total_seconds()) + 1)
    return None


async def _failed(sessions: async_sessionmaker, email: str, address: str) -> None:
    now = utcnow()
    async with sessions() as session:
        await session.execute(delete(LoginFailureRow).where(
            LoginFailureRow.created_at < now - LOGIN_WINDOW))
        session.add_all([LoginFailureRow(key=key, created_at=now)
                         for key in _failure_keys(email, address)])
        await session.commit()


async def login(sessions: async_sessionmaker, email: str, password: str, address: str,
                shop: str | None = None) -> IssuedSession:
    """A new session for the email and password, in the shop with this slug (else the user's
    first shop; an operator without shops gets the operator's session). LoginThrottled,
    LoginRefused (one message for every wrong credential) or NotAMember."""
    email = normal_email(email)[:254]
    async with sessions() as session:
        await _throttle(session, email, address)
        user = await _user_by_email(session, email)
    stored = user.password_hash if user is not None and not user.disabled else None
    matches = await password_matches(stored, password)  # always: as slow for unknown emails
    if user is None or not matches:
        await _failed(sessions, email, address)
        raise LoginRefused()
    async with sessions() as session:
        await session.execute(delete(LoginFailureRow).where(
            LoginFailureRow.key == _failure_keys(email, address)[0]))
        if stored and _HASHER.check_needs_rehash(stored):  # argon2's parameters were raised
            rehashed = await asyncio.to_thread(_HASHER.hash, password)
            changed = await session.execute(
                update(UserRow).where(UserRow.id == user.id, UserRow.password_hash == stored)
                .values(password_hash=rehashed))
            stored = rehashed if getattr(changed, "rowcount", 0) else stored
        await session.commit()
    return await start_session(sessions, User.of(user), shop, checked_against=stored)


async def start_session(sessions: async_sessionmaker, user: User,
                        shop: str | None = None, *,
                        checked_against: str | None = None) -> IssuedSession:
    """A new session for a user whose credentials were checked (a login, an invitation just
    accepted with a password), in the shop with this slug or the user's first.

    `checked_against`: the password hash the credentials were checked against. The session
    is made only if it is still the account's: a password reset between the check and here
    ends every session, and must not miss this one (LoginRefused). The check is the same
    UPDATE that takes the account's row, so a reset (passwords.py: its UPDATE, then deleting
    the sessions, in one transaction) either comes after and deletes this session too, or
    came before and this one is refused."""
    chosen = _choose(await shops_of(sessions, user.id), shop, user.is_operator)
    now = utcnow()
    token = new_token()
    async with sessions() as session:
        # Ended sessions are swept here (logins are rare; the table stays its live size).
        await session.execute(delete(AdminSessionRow).where(or_(
            AdminSessionRow.expires_at <= now, AdminSessionRow.last_seen_at <= now - SESSION_IDLE)))
        same = [UserRow.password_hash == checked_against] if checked_against else []
        seen = await session.execute(update(UserRow).where(UserRow.id == user.id, *same)
                                     .values(last_login_at=now))
        if checked_against and not getattr(seen, "rowcount", 0):
            await session.rollback()
            raise LoginRefused()
        row = AdminSessionRow(token_hash=token_hash(token), user_id=user.id,
                              tenant_id=chosen.tenant_id if chosen else None, created_at=now,
                              expires_at=now + SESSION_ABSOLUTE, last_seen_at=now)
        session.add(row)
        await session.commit()
        fresh = replace(user, last_login_at=now)
        return IssuedSession(Session(row.id, fresh, chosen, row.expires_at), token)


def _choose(shops: list[ShopRole], slug: str | None, is_operator: bool) -> ShopRole | None:
    if slug:
        slug = clean(slug)
        for shop in shops:
            if shop.slug == slug:
                return shop
        raise NotAMember(f"you have no role in a shop called {slug!r}")
    if shops:
        return shops[0]
    if is_operator:
        return None
    raise NotAMember("you have no role in any shop yet")


async def resolve(sessions: async_sessionmaker, token: str) -> Session | None:
    """The live session this cookie value opens, or None (unknown, expired, idle too long,
    user disabled, or no longer a member of the session's shop)."""
    now = utcnow()
    async with sessions() as session:
        found = (await session.execute(
            select(AdminSessionRow, UserRow, MembershipRow, TenantRow)
            .join(UserRow, UserRow.id == AdminSessionRow.user_id)
            .outerjoin(MembershipRow, and_(MembershipRow.user_id == AdminSessionRow.user_id,
                                           MembershipRow.tenant_id == AdminSessionRow.tenant_id))
            .outerjoin(TenantRow, TenantRow.id == AdminSessionRow.tenant_id)
            .where(AdminSessionRow.token_hash == token_hash(token)))).tuples().first()
        if found is None:
            return None
        row, user, membership, tenant = found
        seen = row.last_seen_at or row.created_at
        if row.expires_at <= now or seen + SESSION_IDLE <= now or user.disabled:
            await session.execute(delete(AdminSessionRow).where(AdminSessionRow.id == row.id))
            await session.commit()
            return None
        if row.tenant_id is None:
            if not user.is_operator:
                return None
            shop = None
        elif membership is None or tenant is None:
            return None
        else:
            shop = ShopRole(tenant.id, tenant.slug, tenant.name, membership.role)
        if now - seen >= LAST_SEEN_EVERY:
            await session.execute(update(AdminSessionRow).where(AdminSessionRow.id == row.id)
                                  .values(last_seen_at=now))
            await session.commit()
        return Session(row.id, User.of(user), shop, row.expires_at)


async def switch_shop(sessions: async_sessionmaker, current: Session,
                      slug: str | None) -> Session:
    """Move a session to another of the user's shops (None: an operator's shop-less view)."""
    shops = await shops_of(sessions, current.user.id)
    if slug is None:
        if not current.user.is_operator:
            raise NotAMember("only a platform operator has a session without a shop")
        chosen = None
    else:
        chosen = _choose(shops, slug, current.user.is_operator)
    async with sessions() as session:
        await session.execute(update(AdminSessionRow).where(AdminSessionRow.id == current.id)
                              .values(tenant_id=chosen.tenant_id if chosen else None))
        await session.commit()
    return Session(current.id, current.user, chosen, current.expires_at)


async def logout(sessions: async_sessionmaker, token: str) -> None:
    async with sessions() as session:
        await session.execute(delete(AdminSessionRow).where(
            AdminSessionRow.token_hash == token_hash(token)))
        await session.commit()


async def failures(sessions: async_sessionmaker, email: str | None, address: str) -> int:
    """Failed logins counted in the window for `email` from `address`, or (None) for every
    email from `address` (tests, diagnostics)."""
    pair, alone = _failure_keys(email or "", address)
    key = alone if email is None else pair
    async with sessions() as session:
        count = (await session.execute(select(func.count()).select_from(LoginFailureRow).where(
            LoginFailureRow.key == key,
            LoginFailureRow.created_at > utcnow() - LOGIN_WINDOW))).scalar_one()
    return int(count)
