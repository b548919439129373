"""Manage tenants from the command line until the admin API exists.

    python -m tenants list
    python -m tenants add --slug acme --name "Acme" --backend shopify \\
        --credentials creds.json [--return-window 30] [--greeting "Hi!"]
    python -m tenants keys create --tenant acme --name "order system"   # prints the key once
    python -m tenants keys list --tenant acme
    python -m tenants keys revoke --tenant acme sb_live_3f9a0c1d2e4b
    python -m tenants budget acme 2000000   # LLM tokens a calendar month; `none`: no limit

`creds.json` holds e.g. {"shopify": {"shop_url": ..., "access_token": ...}} or
{"woocommerce": {"store_url": ..., "consumer_key": ..., "consumer_secret": ...}}, plus a
section per channel ("twilio", "meta_whatsapp", "email"; README, Channels) checked by that
channel's own rules (the channel registry, connectors/channels/); it is encrypted with
SWITCHBOARD_CREDENTIALS_KEY before it is stored, and never printed.

`keys` manages a shop's REST API keys (tenants/api_keys.py): `create` prints the new key once
(only its hash is stored: lose it and create another), `list` shows prefixes, names, creation,
last use and revocation, `revoke` stops a key within seconds on every gateway.

This command is an entry point: like every `__main__` module it may use any product package
(here the channel registry), while the rest of `tenants` imports only `core`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import uuid
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from connectors.channels import credentials_problems
from core.db import create_engine, session_factory
from core.settings import ProcessSettings, Settings
from tenants import api_keys
from tenants.crypto import CredentialsBox
from tenants.models import ORDER_BACKENDS, TenantRow

_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
_REQUIRED = {
    "shopify": ("shop_url", "access_token"),
    "woocommerce": ("store_url", "consumer_key", "consumer_secret"),
}


def check_credentials(backend: str, credentials: dict) -> None:
    """Refuse credentials that lack what the backend or a channel needs (better now than
    mid-chat)."""
    needed = _REQUIRED.get(backend, ())
    section = credentials.get(backend, {}) if needed else {}
    missing = [key for key in needed if not section.get(key)]
    if missing:
        raise SystemExit(f"credentials for {backend} need {backend}.{', '.join(missing)}")
    problems = credentials_problems(credentials)
    if problems:
        raise SystemExit("channel credentials: " + "; ".join(problems))


async def add(settings: Settings, args: argparse.Namespace) -> str:
    if not _SLUG.fullmatch(args.slug):
        raise SystemExit("slug: lowercase letters, digits and '-', 2 to 63 characters")
    credentials = json.loads(Path(args.credentials).read_text()) if args.credentials else {}
    check_credentials(args.backend, credentials)
    box = CredentialsBox(settings.credentials_key.reveal())
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            taken = select(TenantRow).where(TenantRow.slug == args.slug)
            if (await session.execute(taken)).first():
                raise SystemExit(f"a tenant called {args.slug!r} exists already")
            row = TenantRow(
                id=str(uuid.uuid4()), slug=args.slug, name=args.name, greeting=args.greeting,
                return_window_days=args.return_window, order_backend=args.backend,
                credentials_encrypted=box.seal(credentials) if credentials else None,
            )
            session.add(row)
            await session.commit()
            return row.id
    finally:
        await engine.dispose()


def budget_tokens(value: str) -> int | None:
    """A monthly token budget from the command line: a whole number >= 0, or `none`."""
    if value.lower() == "none":
        return None
    if not value.isdigit():
        raise argparse.ArgumentTypeError("a whole number of tokens, or none")
    return int(value)


async def set_budget(settings: ProcessSettings, slug: str, tokens: int | None) -> None:
    """Past this many tokens in a month the shop's answers are extractive (knowledge/budget.py);
    running processes see the change when they next reread the tenant."""
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            result = await session.execute(update(TenantRow).where(TenantRow.slug == slug)
                                           .values(llm_monthly_token_budget=tokens))
            await session.commit()
    finally:
        await engine.dispose()
    if not getattr(result, "rowcount", 0):
        raise SystemExit(f"no tenant called {slug!r}")


async def list_tenants(settings: ProcessSettings) -> list[TenantRow]:
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            rows = await session.execute(select(TenantRow).order_by(TenantRow.slug))
            return list(rows.scalars())
    finally:
        await engine.dispose()


async def tenant_id_of(sessions: async_sessionmaker, slug: str) -> str:
    async with sessions() as session:
        found = (await session.execute(select(TenantRow.id).where(TenantRow.slug == slug))
                 ).scalar_one_or_none()
    if found is None:
        raise SystemExit(f"no tenant called {slug!r}")
    return str(found)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


async def keys(settings: ProcessSettings, args: argparse.Namespace) -> list[str]:
    """The `keys` subcommands; returns the lines to print."""
    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        tenant_id = await tenant_id_of(sessions, args.tenant)
        if args.keys_command == "create":
            issued = await api_keys.issue_key(sessions, tenant_id, args.name)
            return [issued.secret,
                    f"# {issued.key.label} ({issued.key.name}) for {args.tenant}: shown once, "
                    "only its hash is stored. Send it as 'Authorization: Bearer <key>'."]
        if args.keys_command == "revoke":
            try:
                key = await api_keys.revoke_key(sessions, tenant_id, args.prefix)
            except api_keys.UnknownApiKey:
                raise SystemExit(f"{args.tenant} has no key {args.prefix!r}") from None
            return [f"revoked {key.label} ({key.name}) at {_when(key.revoked_at)} UTC"]
        return [f"{key.label:24} {key.scope:6} {key.name[:30]:30} created {_when(key.created_at)}"
                f"  used {_when(key.last_used_at)}"
                + (f"  REVOKED {_when(key.revoked_at)}" if key.revoked_at else "")
                for key in await api_keys.list_keys(sessions, tenant_id)]
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tenants", description="Manage tenants")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list tenants")
    add_cmd = sub.add_parser("add", help="add a tenant")
    add_cmd.add_argument("--slug", required=True)
    add_cmd.add_argument("--name", required=True)
    add_cmd.add_argument("--backend", choices=ORDER_BACKENDS, default="demo")
    add_cmd.add_argument("--credentials", help="JSON file with the backend's credentials")
    add_cmd.add_argument("--return-window", type=int, default=30)
    add_cmd.add_argument("--greeting")
    budget_cmd = sub.add_parser("budget", help="set a tenant's monthly LLM token budget")
    budget_cmd.add_argument("slug")
    budget_cmd.add_argument("tokens", type=budget_tokens, help="tokens a month, or none")
    keys_cmd = sub.add_parser("keys", help="a shop's REST API keys")
    keys_sub = keys_cmd.add_subparsers(dest="keys_command", required=True)
    create_cmd = keys_sub.add_parser("create", help="a new key, printed once")
    create_cmd.add_argument("--name", required=True, help="what the key is for")
    list_cmd = keys_sub.add_parser("list", help="the shop's keys (prefixes, never secrets)")
    revoke_cmd = keys_sub.add_parser("revoke", help="stop a key")
    revoke_cmd.add_argument("prefix", help="the key's prefix as listed (sb_live_…)")
    for command in (create_cmd, list_cmd, revoke_cmd):
        command.add_argument("--tenant", required=True, help="the shop's slug")
    args = parser.parse_args(argv)
    # Only `add` seals credentials (SWITCHBOARD_CREDENTIALS_KEY); the rest needs the database.
    settings = ProcessSettings.from_env()
    if args.command == "add":
        tenant_id = asyncio.run(add(Settings.from_env(), args))
        print(f"added {args.slug} ({tenant_id}): POST /channels/{args.slug}/rest/webhook "
              f"with a key from `python -m tenants keys create --tenant {args.slug}`")
    elif args.command == "keys":
        for line in asyncio.run(keys(settings, args)):
            print(line)
    elif args.command == "budget":
        asyncio.run(set_budget(settings, args.slug, args.tokens))
        print(f"{args.slug}: " + ("no LLM budget" if args.tokens is None
                                  else f"{args.tokens} LLM tokens a month"))
    else:
        for row in asyncio.run(list_tenants(settings)):
            secret = "credentials stored" if row.credentials_encrypted else "no credentials"
            print(f"{row.slug:20} {row.order_backend:12} {row.return_window_days:3}d  "
                  f"{secret}  {row.id}")


if __name__ == "__main__":
    main()
