"""Which shop a widget belongs to (its public key) and how it looks (its validated theme)."""

from __future__ import annotations

import hmac
import re

from tenants import Tenant

_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
DEFAULT_THEME = {"primary": "#1f6feb", "text": "#ffffff", "position": "right"}


def key_matches(tenant: Tenant, key: str | None) -> bool:
    expected = tenant.widget_key
    if not expected or not key:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), key.encode("utf-8"))


def theme_of(tenant: Tenant) -> dict[str, str]:
    """The shop's look, validated: the widget puts these into CSS, so only known shapes pass."""
    raw_theme = tenant.widget_theme if isinstance(tenant.widget_theme, dict) else {}
    theme = dict(DEFAULT_THEME, title=tenant.name)
    for name in ("primary", "text"):
        value = raw_theme.get(name)
        if isinstance(value, str) and _HEX.match(value):
            theme[name] = value
    if raw_theme.get("position") in ("left", "right"):
        theme["position"] = raw_theme["position"]
    title = raw_theme.get("title")
    if isinstance(title, str) and title.strip():
        theme["title"] = title.strip()[:80]
    return theme
