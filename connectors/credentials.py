"""Each tenant's channel credentials, decrypted on demand and kept only in memory.

The tenant row carries the Fernet token (tenants/crypto.py); the resolver refreshes tenants
every 30 s, so a changed token shows up here as a different cache key. Which section a channel
reads and what makes it usable is the channel's own business (Channel.section_of).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from tenants import Tenant
from tenants.crypto import CredentialsBox


class ChannelCredentials:
    def __init__(self, box: CredentialsBox, size: int = 512) -> None:
        self._box = box
        self._size = size
        self._opened: OrderedDict[bytes, dict[str, Any]] = OrderedDict()

    def all(self, tenant: Tenant) -> Mapping[str, Any]:
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
