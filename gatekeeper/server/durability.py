"""Waiting from the event loop until audit records are durable, one thread hand-off per fsync.

A cached decision is decided and recorded on the event loop (see ``Service.decide_async``); only the
``fsync`` that makes its record durable has to leave the loop. Calls that arrive while an fsync runs
wait for the next one together: one hand-off to a thread serves them all, where deciding each on a
thread of its own cost a hand-off, and a turn at the interpreter lock, per call.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

from gatekeeper.audit import AuditLog


class DurableWaits:
    """Group commit for coroutines: ``await wait(seq)`` returns once record ``seq`` is fsync'd."""

    def __init__(self, audit: AuditLog, executor: Executor) -> None:
        self._audit = audit
        self._executor = executor
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._syncing = False

    async def wait(self, seq: int) -> None:
        """Return once record ``seq`` is durable; AuditError if the fsync failed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append((seq, future))
        if not self._syncing:
            self._sync(loop)
        await future

    def _sync(self, loop: asyncio.AbstractEventLoop) -> None:
        self._syncing = True
        # Through the last record written, not only the last awaited: calls whose records were
        # written while this one was being set up are covered by the same fsync.
        target = max(self._audit.last_written_seq, *(seq for seq, _future in self._waiting))
        synced = loop.run_in_executor(self._executor, self._audit.sync_through, target)
        synced.add_done_callback(lambda done: self._synced(loop, target, done))

    def _synced(self, loop: asyncio.AbstractEventLoop, target: int, done: asyncio.Future[None]) -> None:
        self._syncing = False
        error = done.exception()
        later: list[tuple[int, asyncio.Future[None]]] = []
        for seq, future in self._waiting:
            if seq > target:
                later.append((seq, future))
            elif future.done():
                continue  # its request went away
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(None)
        self._waiting = later
        if later:
            self._sync(loop)
