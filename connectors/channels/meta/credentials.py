"""What a shop's `meta_whatsapp` credentials section must hold (see README, Channels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REQUIRED = ("app_secret", "verify_token", "access_token", "phone_number_id")


def check(section: Mapping[str, Any]) -> list[str]:
    problems = [f"meta_whatsapp.{key} is missing" for key in REQUIRED if not section.get(key)]
    problems += [f"meta_whatsapp.{key} must be a string" for key in REQUIRED
                 if section.get(key) and (isinstance(section[key], bool)
                                          or not isinstance(section[key], str | int))]
    return problems
