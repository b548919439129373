"""What a shop's optional `rest` credentials section holds: where agents' replies go.

REST clients are answered within their request; a reply a person writes later has no request
to ride on. A shop that wants those pushed sets `callback_url` (http or https, on a public
host: `check_destinations`, core/destinations.py) and `signing_secret` (at least 16
characters; the gateway signs each callback with it: connectors/channels/rest/callbacks.py).
Without the section, replies wait for the shop to poll `GET /channels/<shop>/rest/messages`.
The REST channel itself needs no credentials (its requests carry the shop's API key), so its
registry entry names this check as `optional_credentials`: applied when the section is there
(the tenants CLI, the admin API's PUT /channels/rest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from core.destinations import Destinations

SECTION = "rest"
MIN_SECRET = 16


@dataclass(frozen=True)
class CallbackConfig:
    url: str
    secret: str = field(repr=False)


def check(section: Mapping[str, Any]) -> list[str]:
    problems = []
    url = section.get("callback_url")
    if not isinstance(url, str) or not url:
        problems.append("rest.callback_url is missing")
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append("rest.callback_url must be an http(s) URL")
    secret = section.get("signing_secret")
    if not isinstance(secret, str) or not secret:
        problems.append("rest.signing_secret is missing")
    elif len(secret) < MIN_SECRET:
        problems.append(f"rest.signing_secret must have at least {MIN_SECRET} characters")
    return problems


def check_destinations(section: Mapping[str, Any], destinations: Destinations) -> list[str]:
    """The callback's host under the deployment's policy (checked when the owner saves it;
    the gateway's client checks the addresses again at each callback)."""
    refused = destinations.refusal(urlsplit(str(section["callback_url"])).hostname or "")
    return [f"rest.callback_url {refused}"] if refused else []


def callback_of(credentials: Mapping[str, Any]) -> CallbackConfig | None:
    """The shop's callback when its section is there and usable; else None (poll only)."""
    section = credentials.get(SECTION)
    if not isinstance(section, Mapping) or not section or check(section):
        return None
    return CallbackConfig(url=str(section["callback_url"]), secret=str(section["signing_secret"]))
