"""What a shop's `email` credentials section must hold (see README, Channels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SERVICES = {"mailgun": "mailgun_signing_key", "sendgrid": "sendgrid_public_key"}


def check(section: Mapping[str, Any]) -> list[str]:
    problems = [f"email.{key} is missing" for key in ("address", "inbound", "smtp")
                if not section.get(key)]
    inbound = section.get("inbound")
    if inbound and inbound not in SERVICES:
        problems.append("email.inbound is 'mailgun' or 'sendgrid'")
    elif inbound and not section.get(SERVICES[inbound]):
        problems.append(f"email via {inbound} needs its signing key (email.{SERVICES[inbound]})")
    smtp = section.get("smtp")
    if smtp and not (isinstance(smtp, Mapping) and smtp.get("host")):
        problems.append("email.smtp needs a host")
    return problems
