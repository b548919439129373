"""How many turns run inside Rasa's process at once, and in which order the others get in.

Rasa's event loop interleaves every turn it has been handed at each await (an action call, the
tracker store). Under load that shares the process's one core among all of them: a turn's time
grows with its own work times the number beside it, and the slowest kind of turn sets the tail.
`TurnGate` lets `slots` turns run; the others wait and then run nearly alone. Waiting turns
queue per shop (the `queue` a turn names) and the shops take turns at the free slots: a shop's
own turns get in in the order they came, and a burst of one shop (the gateway lets up to 24 of
a shop's turns in flight, connectors/fairness.py) makes another shop's next turn wait for one
of its turns, not for all of them.

A running turn keeps its slot while it waits on another service (the action server, the NLG
endpoint: milliseconds): giving it up for every such call lets as many new turns in, and the
interleaving is back (measured: p95 / p50 as without a gate). A call still unanswered after
`patience` (0.1 s; a shop's API being slow behind the action server) gives the slot up until it
answers, so a slow shop holds up no other visitor; the turn then gets back in ahead of the turns
that have not started.

Pure asyncio (no Rasa): bot/channel.py holds one gate per process and runs each turn inside it;
Rasa's calls to the action server (bot/channel.py `install`) and our NLG client's (bot/nlg.py)
go through `waiting_on`, which finds the running turn in a context variable (callers outside a
turn just await).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

T = TypeVar("T")
PATIENCE = 0.1  # seconds a turn waits on another service before it gives its slot up

_running: contextvars.ContextVar[Turn | None] = contextvars.ContextVar("switchboard_gate_turn",
                                                                      default=None)


async def waiting_on(call: Awaitable[T]) -> T:
    """`call` (to another service) awaited by the running turn, if any: a quick answer keeps
    the turn's slot; past the gate's `patience` the slot is given up until the answer comes."""
    turn = _running.get()
    if turn is None or not turn.inside:
        return await call
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait((task,), timeout=turn.gate.patience)
        if not done:
            async with turn.outside():
                await asyncio.wait((task,))
    except asyncio.CancelledError:
        task.cancel()
        raise
    return task.result()


class TurnGate:
    def __init__(self, slots: int, patience: float = PATIENCE,
                 waited: Callable[[float], None] | None = None) -> None:
        """`waited` is told how many seconds each turn waited before it started."""
        if slots < 1:
            raise ValueError("a gate needs at least one slot")
        self.slots = slots
        self.patience = patience
        self.waited = waited
        self._free = slots
        # Turns not started, oldest first, per queue; the queue that has the next slot first.
        self._new: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._back: deque[asyncio.Future[None]] = deque()  # started turns coming back in

    @property
    def running(self) -> int:
        return self.slots - self._free

    @property
    def waiting(self) -> int:
        return sum(map(len, self._new.values())) + len(self._back)

    @asynccontextmanager
    async def turn(self, queue: str = "") -> AsyncIterator[Turn]:
        """A turn from its start to its end: waits behind the turns already waiting in its
        `queue` (its shop), taking turns with the other queues."""
        turn = Turn(self)
        arrived = time.monotonic()
        waiting = self._new.get(queue)
        if not waiting:  # none, or left empty by a cancelled waiter: last in line
            self._new.pop(queue, None)
            waiting = self._new[queue] = deque()
        await self._enter(waiting)
        if self.waited is not None:
            self.waited(time.monotonic() - arrived)
        turn.inside = True
        token = _running.set(turn)
        try:
            yield turn
        finally:
            _running.reset(token)
            if turn.inside:
                self._leave()

    async def _enter(self, queue: deque[asyncio.Future[None]]) -> None:
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(ticket)
        self._hand_out()
        try:
            await ticket  # at once when a slot was free and no one waited
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():
                self._leave()  # the slot came as the waiter was cancelled: pass it on
            elif ticket in queue:
                queue.remove(ticket)
            raise

    def _leave(self) -> None:
        self._free += 1
        self._hand_out()

    def _hand_out(self) -> None:
        """Free slots to the waiters: turns coming back in first, oldest first, then new ones,
        the oldest of the next queue in turn (tickets of waiters cancelled meanwhile are
        dropped, and so are queues left empty)."""
        while self._free and (self._back or self._new):
            if self._back:
                ticket = self._back.popleft()
            else:
                queue, waiting = next(iter(self._new.items()))
                del self._new[queue]
                if not waiting:  # its only waiter was cancelled
                    continue
                ticket = waiting.popleft()
                if waiting:
                    self._new[queue] = waiting  # last in line for the next slot
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
