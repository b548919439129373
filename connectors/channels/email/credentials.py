"""What a shop's `email` credentials section must hold (see README, Channels)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.destinations import Destinations

SERVICES = {"mailgun": "mailgun_signing_key", "sendgrid": "sendgrid_public_key"}
# One mailbox's address (what visitors write to and replies come from), not a display form.
ADDRESS = re.compile(r"^[^@\s<>\",;]+@[^@\s<>\",;]+\.[^@\s<>\",;.]+$")


def port(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return isinstance(value, int) and 0 < value < 65536


def check(section: Mapping[str, Any]) -> list[str]:
    problems = [f"email.{key} is missing" for key in ("address", "inbound", "smtp")
                if not section.get(key)]
    address = section.get("address")
    if address and not (isinstance(address, str) and ADDRESS.match(address.strip())):
        problems.append("email.address must be one email address (support@shop.example)")
    inbound = section.get("inbound")
    if inbound and inbound not in SERVICES:
        problems.append("email.inbound is 'mailgun' or 'sendgrid'")
    elif inbound and not section.get(SERVICES[inbound]):
        problems.append(f"email via {inbound} needs its signing key (email.{SERVICES[inbound]})")
    smtp = section.get("smtp")
    if smtp and not (isinstance(smtp, Mapping) and smtp.get("host")):
        problems.append("email.smtp needs a host")
    elif isinstance(smtp, Mapping) and smtp.get("port") is not None and not port(smtp["port"]):
        problems.append("email.smtp.port must be a port number (1-65535), e.g. 587")
    return problems


def check_destinations(section: Mapping[str, Any], destinations: Destinations) -> list[str]:
    """The SMTP server's host under the deployment's policy (checked when the owner saves it;
    the sender checks its addresses again when it connects)."""
    refused = destinations.refusal(str(section["smtp"]["host"]))
    return [f"email.smtp.host {refused}"] if refused else []
