"""Each tenant's channel credentials, decrypted on demand and kept only in memory.

The tenant row carries the Fernet token (tenants/crypto.py); the resolver refreshes tenants
every 30 s, so a changed token shows up here as a different cache key.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from connectors.errors import ChannelNotConfigured
from tenants import Tenant
from tenants.crypto import CredentialsBox

_LABELS = {"twilio": "Twilio", "meta_whatsapp": "WhatsApp Cloud API", "email": "email"}


class ChannelCredentials:
    def __init__(self, box: CredentialsBox, size: int = 512) -> None:
        self._box = box
        self._size = size
        self._opened: OrderedDict[bytes, dict[str, Any]] = OrderedDict()

    def all(self, tenant: Tenant) -> dict[str, Any]:
        token = tenant.credentials_encrypted
        if not token:
            return {}
        opened = self._opened.get(token)
        if opened is None:
            opened = self._box.open(token)
            self._opened[token] = opened
            if len(self._opened) > self._size:
                self._opened.popitem(last=False)
        else:
            self._opened.move_to_end(token)
        return opened

    async def section(self, tenant: Tenant, name: str) -> dict[str, Any]:
        """The tenant's credentials for one provider; 404 when the shop has not set it up."""
        section = self.all(tenant).get(name)
        if not isinstance(section, dict) or not section:
            raise ChannelNotConfigured(
                f"The {_LABELS.get(name, name)} channel is not set up for this shop.")
        return section
