"""The platform's own mail (invitations, password reset links), sent over SMTP_URL with
aiosmtplib.

Not a shop's email channel (connectors/channels/email/): this is Switchboard writing to the
people who run shops, from MAIL_FROM, through one server the platform configures:
`smtp://[user:pass@]host[:port]` (STARTTLS when the server offers it) or `smtps://…` (TLS from
the first byte). In development SMTP_URL is the sandbox's SMTP (127.0.0.1:2525). With SMTP_URL
unset nothing is sent: whoever invited gets the link to pass on (`Invitations.deliver`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

import aiosmtplib

from core.settings import Settings

log = logging.getLogger(__name__)
TIMEOUT = 10.0  # seconds for one message, connection included


class MailError(Exception):
    """The SMTP server could not be reached or refused the message."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    tls: bool  # smtps: TLS from the start; smtp: STARTTLS if offered
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        tls = parts.scheme == "smtps"
        return cls(host=parts.hostname or "127.0.0.1", port=parts.port or (465 if tls else 25),
                   tls=tls, username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None)


async def send(settings: Settings, to: str, subject: str, text: str) -> str:
    """Send a plain-text mail; returns its Message-ID. MailError when it could not be sent
    (settings.smtp_url must be set)."""
    if not settings.smtp_url:
        raise MailError("no SMTP_URL: the platform sends no mail")
    server = SmtpServer.from_url(settings.smtp_url)
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    try:
        await aiosmtplib.send(message, hostname=server.host, port=server.port,
                              username=server.username, password=server.password,
                              use_tls=server.tls, start_tls=None if not server.tls else False,
                              timeout=TIMEOUT)
    except (TimeoutError, OSError, aiosmtplib.SMTPException) as exc:
        log.warning("platform mail not sent", extra={"error": type(exc).__name__})
        raise MailError(f"the mail server did not take the message ({type(exc).__name__})"
                        ) from None
    return str(message["Message-ID"])


def invitation_link(base_url: str, token: str) -> str:
    """The page that accepts an invitation (admin_api/pages: `/invite?token=…`)."""
    return f"{base_url.rstrip('/')}/invite?token={token}"


def invitation_text(shop: str, role: str, link: str, invited_by: str | None) -> str:
    """Who invited: the person (`user:<email>`); an API key is the shop's own script, so the
    shop's team (never Switchboard's, which sent nothing)."""
    who = invited_by.removeprefix("user:") if invited_by and invited_by.startswith("user:") \
        else f"The {shop} team"
    return (
        f"Hello,\n\n{who} invited you to help run the support bot of {shop} on Switchboard "
        f"as {'an' if role[:1] in 'aeiou' else 'a'} {role}.\n\n"
        f"Choose your password and join here (the link works once, for 7 days):\n\n{link}\n\n"
        "If you did not expect this, ignore this mail: nothing happens until the link is "
        "used.\n")


async def deliver_invitation(settings: Settings, *, base_url: str, token: str, email: str,
                             shop: str, role: str, invited_by: str | None) -> str | None:
    """Mail the invitation when SMTP_URL is set (returns None: the link went by mail only);
    without SMTP_URL return the link for whoever invited to pass on. MailError when the
    server fails."""
    link = invitation_link(settings.admin_public_url or base_url, token)
    if not settings.smtp_url:
        return link
    await send(settings, email, f"Join {shop} on Switchboard",
               invitation_text(shop, role, link, invited_by))
    log.info("invitation mailed", extra={"role": role})
    return None


def reset_link(base_url: str, token: str) -> str:
    """The page that chooses a new password (admin_api/pages: `/reset?token=…`)."""
    return f"{base_url.rstrip('/')}/reset?token={token}"


def reset_text(email: str, link: str, valid_for: str) -> str:
    """The reset mail. It says what the link does to other browsers, so someone who did not
    ask and follows it anyway is not surprised."""
    return (
        f"Hello,\n\nSomeone asked to reset the password of the Switchboard account {email}.\n\n"
        f"Choose a new password here (the link works once, for {valid_for}):\n\n{link}\n\n"
        "A new password logs out every browser signed in to the account. If you did not ask "
        "for this, ignore this mail: your password stays as it is.\n")


def handoff_notice_text(shop: str, channel: str, reason: str, link: str) -> str:
    """The notice to a shop's support address: a visitor waits and no agent has the inbox
    open. Nothing of the visitor (no address, no message text) is in it: the link is."""
    return (
        f"Hello,\n\nA visitor on {channel} asked {shop}'s support bot for a person "
        f"({reason.replace('_', ' ')}), and nobody has the agent inbox open right now.\n\n"
        f"Open the conversation (log in as an agent or owner):\n\n{link}\n\n"
        "The visitor was told that a person from your team will reply in that conversation.\n")
