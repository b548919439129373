"""Full garbage collections that no longer stop a serving process for a turn's length.

Python's cyclic collector walks every tracked object of its oldest generation on a full
collection, and a serving process holds millions of them from its start to its end: the
libraries' modules, Rasa's models, the embedding model's tokenizer, the ORM's mappings. Under
20 concurrent conversations (bench/turns.py, the embedded stack) a full collection came every
15-30 s in Rasa and in the action server and stopped its event loop for 0.3-0.5 s each time,
with every turn in flight waiting for it; the admin service (NLG) and the gateway paused
0.15-0.35 s now and then. Those are the slowest turns of all: the p95 and p99. Settled, in
paired runs at one moment (bench/turns.py --concurrency 20 --conversations 600): p99 920-985
ms via the gateway instead of 1265-1369, p95 836-886 instead of 903-930 (a slow moment of
the machine; stop 33's note has the table).

`settle` collects once and moves what survived into the permanent generation (`gc.freeze`),
which collections skip: what the process allocates while serving is collected as before, and
a full collection walks only that. Every serving process settles once it is ready
(`settle_when_started`); Rasa's also after each model it loads (bot/runtime.py). Something
settled that is dropped later (a shop's model unloaded under the memory budget) is not
collected while it stays frozen: `release` unfreezes everything, collects it and settles again.

Rasa `hold`s the collector from its start until the base model is loaded and settled: while
the heap grows to millions of objects, every full collection walks it all again (twelve in
Rasa's import and model load, 3.3 s of CPU); held, import and load took 23.8-26.2 s of CPU
instead of 27.4-28.4 (`Agent.load` of models/switchboard.tar.gz, twice each), the one
collection of `settle` included.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)


def hold() -> None:
    """No collections until the next `settle`: for a start that only builds what it keeps."""
    gc.disable()


def settle(what: str) -> None:
    """Collect now, then keep everything alive from every later collection's walk (and
    collect again from here on, after a `hold`)."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    gc.enable()
    log.info("heap settled", extra={"what": what, "frozen": gc.get_freeze_count(),
                                    "ms": round((time.perf_counter() - started) * 1000, 1)})


def release(what: str) -> None:
    """After dropping something settled: collect it, and settle what remains."""
    gc.unfreeze()
    settle(what)


def settle_when_started(app: Any) -> None:
    """Settle a Sanic app's process once its server has started (and its listeners ran)."""

    async def settle_after_start(app: Any) -> None:
        settle(f"{app.name} started")

    app.register_listener(settle_after_start, "after_server_start")
