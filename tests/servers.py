"""Real HTTP servers on loopback for tests: a free port, and a Sanic app served on one.

`serving(app)` runs the app's own server (not the ASGI test client) in the test's event loop,
with its start-up and server listeners, so the product's async clients, websockets and raw
sockets reach it without threads; it stops the server, with the stop listeners, when the block
ends. One copy of both, instead of one per test module.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:  # free_port's users (tests/bot/, tests/integration/) need no Sanic
    from sanic import Sanic


def free_port() -> int:
    """A loopback port nothing listens on now (the OS's pick for a socket bound to port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
