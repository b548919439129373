"""Fewer round trips to aiosqlite's thread for our SQLite engines (the embedded default).

aiosqlite runs each sqlite3 call on a thread of its own: a queue, a wake-up of that thread, the
event loop woken back with the result. SQLAlchemy's adapter makes every statement four such
trips (open a cursor, execute, fetch the rows, close the cursor) and rolls back on closing a
session that only read and again when the pool takes the connection back, also right after a
commit. A REST turn in the gateway (whether a person owns the conversation, the visitor's
message stored, the reply and what the bot understood stored) made 21 trips.

- `single_trip_statements`: a statement's cursor, execution, rows and closing run as one call
  on the thread, with the same results and errors as SQLAlchemy's adapter (rows, description,
  lastrowid, rowcount; sqlite3's exceptions, "no active connection" as OperationalError).
  Server-side cursors (`stream_results`) keep the adapter's own code.
- `skip_empty_rollbacks`: a rollback reaches the thread only when SQLite holds a transaction
  open (`in_transaction`); sqlite3 itself turns the others into nothing.

Together a REST turn makes 6 trips instead of 21, and those three calls take 2.7 ms of CPU
instead of 3.9 (1,000 of each in a loop on a temporary SQLite file, /tmp script, the mean of
three runs each way). In the whole stack under 20 concurrent conversations
(`bench/stock_flow.py --rounds 1`, four runs each way, alternating) the gateway took 6.65 ms
of CPU a turn instead of 7.0.

This patches SQLAlchemy's aiosqlite cursor class for the whole process (our runtime only:
Rasa's interpreter never imports it), at the versions pinned in requirements/app.lock;
tests/core/test_aiosqlite_trips.py checks results and errors against the adapter's own.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_cursor
from sqlalchemy.ext.asyncio import AsyncEngine

_adapter_execute = AsyncAdapt_aiosqlite_cursor.execute


def _execute(self: AsyncAdapt_aiosqlite_cursor, operation: Any,
             parameters: Any = None) -> None:
    """AsyncAdapt_aiosqlite_cursor.execute in one trip to aiosqlite's thread."""
    if self.server_side:  # its cursor stays open for the rows streamed later
        _adapter_execute(self, operation, parameters)
        return
    driver = self._connection  # the aiosqlite.Connection

    def run() -> tuple[Any, list[Any] | None, int | None, int]:
        cursor = driver._conn.cursor()  # on aiosqlite's thread, as its own calls are
        try:
            cursor.execute(operation, () if parameters is None else parameters)
            description = cursor.description
            rows = cursor.fetchall() if description else None
            return description, rows, cursor.lastrowid, cursor.rowcount
        finally:
            cursor.close()

    try:
        description, rows, lastrowid, rowcount = self.await_(driver._execute(run))
    except Exception as error:
        self._adapt_connection._handle_exception(error)
    if description:
        self.description = description
        self.lastrowid = self.rowcount = -1
        self._rows = deque(rows or ())
    else:
        self.description = None
        self.lastrowid = lastrowid
        self.rowcount = rowcount


def single_trip_statements() -> None:
    """Every aiosqlite statement of this process in one trip (idempotent)."""
    AsyncAdapt_aiosqlite_cursor.execute = _execute  # type: ignore[method-assign]  # the patch


def skip_empty_rollbacks(engine: AsyncEngine) -> None:
    """`engine`'s rollbacks reach SQLite only when it holds a transaction open."""
    dialect = engine.sync_engine.dialect
    rollback = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            open_transaction = dbapi_connection.driver_connection.in_transaction
        except Exception:  # a closed or broken connection: the rollback itself says so
            open_transaction = True
        if open_transaction:
            rollback(dbapi_connection)

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]  # this engine only


def fewer_round_trips(engine: AsyncEngine) -> None:
    single_trip_statements()
    skip_empty_rollbacks(engine)
