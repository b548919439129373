"""What a shop's `twilio` credentials section must hold (see README, Channels)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# A phone number as Twilio shows it, written any way ("+1 (555) 000-1111"): E.164 has 7 to 15
# digits after its "+" (an optional "whatsapp:" prefix is Twilio's own address form). The "+"
# and country code are needed: Twilio's webhooks name the shop's number in E.164, and a number
# saved as "555-0100" matched none of them (every message to it refused).
PHONE = re.compile(r"^(?:whatsapp:)?\+[\d\s().-]+$")
NUMBERS = "must be a list of phone numbers, each with its country code (+1 555 000 1111)"


def phone_number(value: Any) -> bool:
    digits = sum(c.isdigit() for c in value) if isinstance(value, str) else 0
    return isinstance(value, str) and bool(PHONE.match(value.strip())) and 7 <= digits <= 15


def check(section: Mapping[str, Any]) -> list[str]:
    problems = [f"twilio.{key} is missing" for key in ("account_sid", "auth_token")
                if not section.get(key)]
    sid = section.get("account_sid")
    if sid and not (isinstance(sid, str) and sid.startswith("AC")):
        problems.append("twilio.account_sid is the Account SID from Twilio's console (AC…)")
    numbers = [section.get(key) for key in ("sms_numbers", "whatsapp_numbers")]
    if not any(numbers):
        problems.append("twilio needs sms_numbers or whatsapp_numbers")
    for key, value in zip(("sms_numbers", "whatsapp_numbers"), numbers, strict=True):
        if value and not (isinstance(value, list) and all(phone_number(n) for n in value)):
            problems.append(f"twilio.{key} {NUMBERS}")
    return problems
