"""The channel registry: every channel the gateway serves, listed once.

Adding a channel: a folder here with its routes (verify → parse → hand to the inbox), its
sender if it answers through a provider's API, and its credentials check, exposing a `CHANNEL`
(contract.Channel); then one line in `CHANNELS` below. The gateway mounts its routes, the
outbox gets its sender, and the tenants CLI (and the admin API) check shops' credentials with
its check. contract.py says what a channel may use and how it answers each condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.channels import email, meta, rest, twilio, web
from connectors.channels.contract import Channel

CHANNELS: tuple[Channel, ...] = (rest.CHANNEL, web.CHANNEL, twilio.CHANNEL, meta.CHANNEL,
                                 email.CHANNEL)
BY_NAME: Mapping[str, Channel] = {channel.name: channel for channel in CHANNELS}


def credentials_problems(credentials: Mapping[str, Any]) -> list[str]:
    """What is wrong with the channel sections present in a shop's credentials ([] if none);
    optional ones (REST's reply callback) are checked when present."""
    return [problem for channel in CHANNELS
            if (channel.check_credentials or channel.optional_credentials) is not None
            and channel.section in credentials
            for problem in channel.problems(credentials)]


__all__ = ["BY_NAME", "CHANNELS", "Channel", "credentials_problems"]
