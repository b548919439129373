"""Real HTTP servers on loopback for tests: a free port, and a Sanic app served on one.

`serving(app)` runs the app's own server (not the ASGI test client) in the test's event loop,
with its start-up and server listeners, so the product's async clients, websockets and raw
sockets reach it without threads; it stops the server, with the stop listeners, when the block
ends. One copy of both, instead of one per test module.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:  # free_port's users (tests/bot/, tests/integration/) need no Sanic
    from sanic import Sanic


# Ports handed out by free_port: below the kernel's ephemeral range (32768-60999 here), which
# port-0 binds (the fakes) and outgoing connections draw from, and one block per pytest-xdist
# worker. A port chosen now and bound later (a stack's process that starts minutes after) can
# then not be taken meanwhile by another worker's pick, a fake or a client connection.
_PORT_BLOCK = 4000
_PORT_BASE = 16000
_pick = random.Random()  # its own: hypothesis seeds the global one in its tests
# Ports already handed out in this process: a test that picks two ports before starting the
# servers on them (Rasa and its metrics endpoint) must not get the same one twice.
_handed: set[int] = set()


def _worker_ports() -> range:
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    start = _PORT_BASE + (worker % 4) * _PORT_BLOCK
    return range(start, start + _PORT_BLOCK)


def free_port() -> int:
    """A loopback port nothing listens on now, from this worker's own block (above)."""
    ports = _worker_ports()
    for port in _pick.sample(ports, 200):
        if port in _handed:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:  # in use
                continue
            _handed.add(port)
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


def wait_until_ready(process: subprocess.Popen[bytes], log: Path, ready: Callable[[], bool],
                     seconds: float, pause: float = 0.5) -> None:
    """Poll `ready()` (an HTTP error counts as not yet) until it says so; the process's log
    tail is the assertion message if it exits first or `seconds` pass (a Rasa-side process
    started by a test: Rasa's import and model load take a while)."""
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(pause)


@contextlib.asynccontextmanager
async def serving(app: Sanic, access_log: bool = False, *,
                  port: int | None = None) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 until the block ends; its base URL, "http://127.0.0.1:<port>".

    `port`: one from `free_port()` when the app must know its own URL before it starts (a free
    one otherwise)."""
    # TouchUp rewrites Sanic's own methods once per process; a second server in the same
    # process must not rewrite them again.
    app.config.TOUCHUP = False
    port = free_port() if port is None else port
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True,
                                     access_log=access_log)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()
