"""The admin service and its command line, for whoever runs the platform on the server.

    python -m admin_api serve                    # the admin service (ADMIN_HOST:ADMIN_PORT,
                                                 # default 0.0.0.0:8080; metrics on
                                                 # METRICS_HOST:ADMIN_METRICS_PORT, 9104)
    python -m admin_api shops create --slug acme --name "Acme" [--owner-email boss@acme.com]
    python -m admin_api invite --tenant acme --email ann@acme.com --role designer
    python -m admin_api users set-password --email ann@acme.com   # asks, or reads stdin
    python -m admin_api operators create --email ops@example.com  # a platform operator
    python -m admin_api keys create --tenant acme --role owner [--name "CI"]
    python -m admin_api keys list --tenant acme
    python -m admin_api keys revoke --tenant acme sb_live_3f9a0c1d2e4b

`keys create` prints the new key as the LAST line of its output (scripts take it with
`tail -n 1`; only its hash is stored). ROLE is owner, designer or agent (the admin API) or
rest (the REST channel). Invitations are mailed through SMTP_URL; without it (or without the
service's secrets in the environment) the one-time link is printed to pass on. Every change is
written to the shop's audit log with the actor `cli`.

The commands read and write the database (DATABASE_URL; default the development SQLite file
in var/), so they work on the server without the running service.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from admin_api import people
from admin_api.mail import MailError, deliver_invitation, invitation_link
from admin_api.tables import ROLES, AuditRow, UserRow
from core import heap, logs
from core.db import create_engine, session_factory, utcnow
from core.settings import ConfigError, ProcessSettings, Settings
from tenants import api_keys

ACTOR = "cli"
DEFAULT_BASE = "http://localhost:8080"


def serve() -> None:
    from admin_api.app import create_app
    from core.metrics import serve_metrics

    settings = Settings.from_env()  # a missing secret or a bad value stops the process here
    logs.configure(settings.log_level, pseudonym_key=settings.log_key,
                   log_message_text=settings.log_message_text)
    app = create_app(settings)
    heap.settle_when_started(app)
    serve_metrics(settings.metrics_host, settings.admin_metrics_port, "admin")
    app.run(host=settings.admin_host, port=settings.admin_port, single_process=True,
            access_log=False, motd=False)


class Cli:
    """One command's database and settings. `settings` is None when the service's secrets
    are not in the environment: the database commands still work, invitations are not
    mailed (the link is printed)."""

    def __init__(self) -> None:
        self.process = ProcessSettings.from_env()
        try:
            self.settings: Settings | None = Settings.from_env()
        except ConfigError:
            self.settings = None
        self.engine = create_engine(self.process.database_url)
        self.sessions: async_sessionmaker = session_factory(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def audit(self, tenant_id: str | None, action: str, target: str,
                    after: dict[str, object] | None = None) -> None:
        async with self.sessions() as session:
            session.add(AuditRow(tenant_id=tenant_id, actor=ACTOR, action=action, target=target,
                                 after=after, created_at=utcnow()))
            await session.commit()

    async def tenant(self, slug: str) -> tuple[str, str]:
        try:
            row = await people.shop_by_slug(self.sessions, slug)
        except people.UnknownShop as exc:
            raise SystemExit(str(exc)) from None
        return row.id, row.name

    async def invite(self, tenant_id: str, shop: str, email: str, role: str) -> list[str]:
        try:
            issued = await people.invite(
                self.sessions, tenant_id, email, role, ACTOR,
                emailed=self.settings is not None and bool(self.settings.smtp_url))
        except people.AlreadyMember as exc:
            raise SystemExit(str(exc)) from None
        await self.audit(tenant_id, "user.invite", people.normal_email(email), {"role": role})
        email = issued.invitation.email
        if self.settings is None:
            link: str | None = invitation_link(DEFAULT_BASE, issued.token)
        else:
            try:
                link = await deliver_invitation(
                    self.settings, base_url=DEFAULT_BASE, token=issued.token, email=email,
                    shop=shop, role=role, invited_by=None)
            except MailError as exc:
                await people.cancel_invitation(self.sessions, tenant_id,
                                               issued.invitation.public_id)
                raise SystemExit(f"the invitation could not be mailed: {exc}") from None
        if link is None:
            return [f"invited {email} as {role} of {shop}: the link is in their mail "
                    f"(valid until {issued.invitation.expires_at:%Y-%m-%d %H:%M} UTC)"]
        return [f"invited {email} as {role} of {shop}; no mail was sent, pass this one-time "
                f"link on (valid 7 days):", link]


def read_password(prompt: str = "password: ") -> str:
    """From stdin when it is not a terminal (scripts: `echo … | python -m admin_api …`),
    else asked twice without echo."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(prompt)
    if getpass.getpass("again: ") != first:
        raise SystemExit("the passwords differ")
    return first


async def run(args: argparse.Namespace) -> list[str]:
    cli = Cli()
    try:
        return await dispatch(cli, args)
    finally:
        await cli.close()


async def dispatch(cli: Cli, args: argparse.Namespace) -> list[str]:
    if args.command == "shops":
        try:
            tenant_id = await people.add_shop(cli.sessions, args.slug, args.name)
        except people.ShopExists as exc:
            raise SystemExit(str(exc)) from None
        await cli.audit(None, "shop.create", args.slug, {"id": tenant_id, "name": args.name})
        lines = [f"created shop {args.slug} ({tenant_id})"]
        if args.owner_email:
            lines += await cli.invite(tenant_id, args.name, args.owner_email, "owner")
        return lines
    if args.command == "invite":
        tenant_id, name = await cli.tenant(args.tenant)
        return await cli.invite(tenant_id, name, args.email, args.role)
    if args.command == "users":
        password = read_password()
        try:
            user = await people.set_password(cli.sessions, args.email, password)
        except (people.UnknownUser, people.WeakPassword) as exc:
            raise SystemExit(str(exc)) from None
        await cli.audit(None, "user.password", user.email)
        return [f"password of {user.email} set; their sessions have ended"]
    if args.command == "operators":
        existing = await people.find_user(cli.sessions, args.email)
        if existing is None or not await has_password(cli, args.email):
            password = read_password(f"password for {args.email}: ")
            try:
                await people.set_password(cli.sessions, args.email, password, create=True)
            except people.WeakPassword as exc:
                raise SystemExit(str(exc)) from None
        user = await people.make_operator(cli.sessions, args.email)
        await cli.audit(None, "operator.create", user.email)
        return [f"{user.email} is a platform operator: log in at the admin service and "
                "POST /api/v1/operator/shops"]
    return await keys(cli, args)


async def has_password(cli: Cli, email: str) -> bool:
    async with cli.sessions() as session:
        stored = (await session.execute(select(UserRow.password_hash).where(
            UserRow.email == people.normal_email(email)))).scalar_one_or_none()
    return stored is not None


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


async def keys(cli: Cli, args: argparse.Namespace) -> list[str]:
    tenant_id, _ = await cli.tenant(args.tenant)
    if args.keys_command == "create":
        name = args.name or f"{args.role} (cli)"
        issued = await api_keys.issue_key(cli.sessions, tenant_id, name, scope=args.role)
        await cli.audit(tenant_id, "key.create", issued.key.prefix,
                        {"name": issued.key.name, "role": issued.key.scope})
        return [f"# {issued.key.label} ({issued.key.name}), role {args.role}, for {args.tenant}: "
                "shown once, only its hash is stored. Send it as "
                "'Authorization: Bearer <key>'.", issued.secret]
    if args.keys_command == "revoke":
        try:
            key = await api_keys.revoke_key(cli.sessions, tenant_id, args.prefix)
        except api_keys.UnknownApiKey:
            raise SystemExit(f"{args.tenant} has no key {args.prefix!r}") from None
        await cli.audit(tenant_id, "key.revoke", key.prefix)
        return [f"revoked {key.label} ({key.name}) at {_when(key.revoked_at)} UTC"]
    return [f"{key.label:24} {key.scope:8} {key.name[:30]:30} created {_when(key.created_at)}"
            f"  used {_when(key.last_used_at)}"
            + (f"  REVOKED {_when(key.revoked_at)}" if key.revoked_at else "")
            for key in await api_keys.list_keys(cli.sessions, tenant_id)]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m admin_api",
                                  description=(__doc__ or "").splitlines()[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  epilog=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the admin service")

    shops = commands.add_parser("shops", help="create a shop")
    shops_sub = shops.add_subparsers(dest="shops_command", required=True)
    create_shop = shops_sub.add_parser("create", help="a new shop, and its first owner invited")
    create_shop.add_argument("--slug", required=True, type=slug)
    create_shop.add_argument("--name", required=True)
    create_shop.add_argument("--owner-email", help="invite this person as the shop's owner")

    invite = commands.add_parser("invite", help="invite someone to a shop")
    invite.add_argument("--tenant", required=True, help="the shop's slug")
    invite.add_argument("--email", required=True)
    invite.add_argument("--role", required=True, choices=ROLES)

    users = commands.add_parser("users", help="people")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    set_password = users_sub.add_parser("set-password", help="set someone's password "
                                        "(stdin, or asked twice); ends their sessions")
    set_password.add_argument("--email", required=True)

    operators = commands.add_parser("operators", help="platform operators")
    operators_sub = operators.add_subparsers(dest="operators_command", required=True)
    create_operator = operators_sub.add_parser("create", help="make someone an operator (asks "
                                               "for a password when they have none)")
    create_operator.add_argument("--email", required=True)

    keys_cmd = commands.add_parser("keys", help="a shop's API keys")
    keys_sub = keys_cmd.add_subparsers(dest="keys_command", required=True)
    create_key = keys_sub.add_parser("create", help="a new key, printed once as the last line")
    create_key.add_argument("--role", required=True, choices=api_keys.SCOPES)
    create_key.add_argument("--name", help="what the key is for")
    list_keys = keys_sub.add_parser("list", help="the shop's keys (prefixes, never secrets)")
    revoke = keys_sub.add_parser("revoke", help="stop a key")
    revoke.add_argument("prefix", help="the key's prefix as listed (sb_live_…)")
    for command in (create_key, list_keys, revoke):
        command.add_argument("--tenant", required=True, help="the shop's slug")
    return top


def slug(value: str) -> str:
    if not people.SLUG.fullmatch(value):
        raise argparse.ArgumentTypeError("lowercase letters, digits and '-', 2 to 63 characters")
    return value


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command == "serve":
        serve()
        return
    logs.configure("WARNING")
    for line in asyncio.run(run(args)):
        print(line)


if __name__ == "__main__":
    main()
