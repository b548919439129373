"""What a shop's `twilio` credentials section must hold (see README, Channels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def check(section: Mapping[str, Any]) -> list[str]:
    problems = [f"twilio.{key} is missing" for key in ("account_sid", "auth_token")
                if not section.get(key)]
    numbers = [section.get(key) for key in ("sms_numbers", "whatsapp_numbers")]
    if not any(numbers):
        problems.append("twilio needs sms_numbers or whatsapp_numbers")
    for key, value in zip(("sms_numbers", "whatsapp_numbers"), numbers, strict=True):
        if value and not (isinstance(value, list) and all(isinstance(n, str) for n in value)):
            problems.append(f"twilio.{key} must be a list of phone numbers")
    return problems
