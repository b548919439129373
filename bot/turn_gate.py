"""How many turns run inside Rasa's process at once, and in which order the others get in.

Rasa's event loop interleaves every turn it has been handed at each await (an action call, the
tracker store). Under load that shares the process's one core among all of them: a turn's time
grows with its own work times the number beside it, and the slowest kind of turn sets the tail.
`TurnGate` lets `slots` turns run; the others wait in the order they came and then run nearly
alone. A running turn that waits on another service (its action server, which may wait on a
shop's API) steps `outside` the gate for that time, so a slow shop holds up no other visitor,
and comes back in ahead of the turns that have not started: a turn once started is finished
before new ones begin.

Pure asyncio (no Rasa): bot/channel.py holds one gate per process and hands each turn to Rasa
inside it; Rasa's calls to the action server (bot/channel.py `install`) and our NLG client's
(bot/nlg.py) step out with `stepping_out()`, which finds the running turn in a context
variable (nothing to step out of for callers outside a turn).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext

_running: contextvars.ContextVar[Turn | None] = contextvars.ContextVar("switchboard_gate_turn",
                                                                      default=None)


def stepping_out() -> AbstractAsyncContextManager[None]:
    """Around a wait on another service: the running turn's slot is free meanwhile."""
    turn = _running.get()
    return turn.outside() if turn is not None else nullcontext()


class TurnGate:
    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a gate needs at least one slot")
        self.slots = slots
        self._free = slots
        self._new: deque[asyncio.Future[None]] = deque()  # turns not started, oldest first
        self._back: deque[asyncio.Future[None]] = deque()  # started turns coming back in

    @property
    def running(self) -> int:
        return self.slots - self._free

    @property
    def waiting(self) -> int:
        return len(self._new) + len(self._back)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[Turn]:
        """A turn from its start to its end: waits behind every turn already waiting."""
        turn = Turn(self)
        await self._enter(self._new)
        turn.inside = True
        token = _running.set(turn)
        try:
            yield turn
        finally:
            _running.reset(token)
            if turn.inside:
                self._leave()

    async def _enter(self, queue: deque[asyncio.Future[None]]) -> None:
        if self._free and not self._new and not self._back:
            self._free -= 1
            return
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(ticket)
        try:
            await ticket
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():
                self._leave()  # the slot came as the waiter was cancelled: pass it on
            elif ticket in queue:
                queue.remove(ticket)
            raise

    def _leave(self) -> None:
        self._free += 1
        while self._free and (self._back or self._new):
            ticket = (self._back or self._new).popleft()
            if not ticket.done():
                self._free -= 1
                ticket.set_result(None)


class Turn:
    """One turn's place in its gate."""

    def __init__(self, gate: TurnGate) -> None:
        self.gate = gate
        self.inside = False

    @asynccontextmanager
    async def outside(self) -> AsyncIterator[None]:
        """Give the slot up while waiting on something else, then get back in before any turn
        not yet started (as it was if that is cancelled: out, and `turn` gives nothing up)."""
        if not self.inside:
            yield
            return
        self.inside = False
        self.gate._leave()
        try:
            yield
        finally:
            await self.gate._enter(self.gate._back)
            self.inside = True
