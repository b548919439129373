"""A real SMTP server (aiosmtpd) for the stack's outbound mail, with a way to wait for mail."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


class Mailbox:
    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[EmailMessage] = []
        self._cond = threading.Condition()
        self._controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, match: Callable[[EmailMessage], bool],
                 timeout: float = 30.0) -> EmailMessage:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.messages:
                    if match(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching mail within {timeout}s "
                                         f"({len(self.messages)} received)")
                self._cond.wait(left)

    def to(self, address: str) -> list[EmailMessage]:
        with self._cond:
            return [m for m in self.messages if address in str(m["To"])]

    def __enter__(self) -> Mailbox:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
