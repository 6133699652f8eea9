"""The agent state log writer: agent state changes into ``agent_state_log``, batched,
never blocking the ACD, kept in memory while the database is away.

It owns the table's INSERT and its own connection (or a pool's); it knows nothing of
HTTP, the ACD's rules or the reports that read the table (``store/agent_figures.py``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg
import asyncpg.exceptions as pgexc

from switchboard.config import redact_dsn
from switchboard.store.errors import TRANSIENT_DB_ERRORS
from switchboard.store.pool import close_connection

# The logger keeps the name it had in the API's services, so operators' filters still match.
log = logging.getLogger("switchboard.api.services")

StateRow = tuple[str, datetime, str | None, str, str | None, str | None, float | None]

# Idempotent: a batch retried after a link drop (its commit may have landed) writes once.
_INSERT_STATE = """
INSERT INTO agent_state_log (agent_id, at, from_state, to_state, reason, call_id, duration_s)
SELECT $1, $2, $3, $4, $5, $6, $7
WHERE NOT EXISTS (SELECT 1 FROM agent_state_log
                  WHERE agent_id = $1 AND at = $2 AND to_state = $4 AND from_state IS NOT DISTINCT FROM $3)
"""

_BAD_DATA_ERRORS: tuple[type[BaseException], ...] = (
    pgexc.DataError,                            # class 22
    pgexc.IntegrityConstraintViolationError,    # class 23
)


class AgentStateLog:
    """Records agent state changes into ``agent_state_log`` without blocking the caller.

    ``record()`` appends to a bounded in-memory queue; a background task writes
    what is queued every ``flush_interval`` seconds in batches (``executemany``).
    While the database is away the rows stay queued and are retried with
    backoff; when the queue is full the oldest row is dropped, counted in
    ``dropped_total`` and logged (rows being written are never dropped: while a
    batch is in flight the queue may exceed ``max_rows`` by up to one batch,
    trimmed when the write ends). Give it a pool or a DSN (then it keeps one
    connection of its own and reconnects).

    Counters: ``queue_depth``, ``written_total``, ``dropped_total``, ``last_error``.
    """

    name = "agent-state-log"

    def __init__(
        self,
        db: asyncpg.Pool | str,
        *,
        max_rows: int = 50_000,
        batch_size: int = 1000,
        flush_interval: float = 0.5,
        timeout: float = 5.0,
        reconnect_min: float = 0.2,
        reconnect_max: float = 5.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if max_rows < 1 or batch_size < 1:
            raise ValueError("max_rows and batch_size must be >= 1")
        self._db = db
        self._max_rows = max_rows
        self._batch_size = min(batch_size, max_rows)
        self._flush_interval = flush_interval
        self._timeout = timeout
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._stop_timeout = stop_timeout
        self._queue: collections.deque[StateRow] = collections.deque()
        self._inflight: list[StateRow] = []
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._backoff = reconnect_min
        self._retry_at = 0.0
        self._dropping = False
        self.written_total = 0
        self.dropped_total = 0
        self.last_error: str | None = None

    # -- counters

    @property
    def queue_depth(self) -> int:
        return len(self._queue) + len(self._inflight)

    # -- producer side

    def record(self, agent_id: str, at: datetime, from_state: str | None, to_state: str,
               reason: str | None = None, call_id: str | None = None, duration_s: float | None = None) -> None:
        """Queue one state change; never blocks, never awaits. ValueError for a row that can
        never be stored (empty ids/states, a naive ``at``)."""
        if not agent_id or not to_state:
            raise ValueError("agent_id and to_state are required")
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise ValueError(f"at must be a timezone-aware datetime (agent {agent_id})")
        if not self._inflight and len(self._queue) >= self._max_rows:  # else trimmed after the write
            self._queue.popleft()
            self._count_drop(1)
        self._queue.append((agent_id, at, from_state, to_state, reason, call_id,
                            None if duration_s is None else float(duration_s)))
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    def _count_drop(self, n: int) -> None:
        self.dropped_total += n
        if not self._dropping:
            self._dropping = True
            log.warning("agent state log queue full (%d rows, database %s): dropping the oldest changes",
                        self._max_rows, "away" if self.last_error else "slow")

    # -- lifecycle

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self.name)
        log.info("agent state log started")

    async def stop(self) -> None:
        """Write what is queued (bounded by ``stop_timeout``), then close."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=self._stop_timeout)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        left = self.queue_depth
        if left:
            self.dropped_total += left
            log.error("agent state log stopped with %d changes not written (database: %s)", left,
                      self.last_error or "?")
            self._queue.clear()
            self._inflight = []
        await self._close_conn()
        log.info("agent state log stopped: %d written, %d dropped", self.written_total, self.dropped_total)

    async def flush(self, *, timeout: float) -> bool:
        """Wait until everything queued so far is written; False on timeout (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self.queue_depth:
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            await asyncio.sleep(0.02)
        return True

    # -- the loop

    async def _run(self) -> None:
        while True:
            if not self._stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._flush_interval)
                except TimeoutError:
                    pass
            self._wake.clear()
            while self._queue and time.monotonic() >= self._retry_at:
                if not await self._write_next():
                    break
            if self._stopping:
                if not self._queue:
                    return
                # the database is away: keep retrying until stop() gives up on us
                await asyncio.sleep(max(0.01, self._retry_at - time.monotonic()))

    async def _write_next(self) -> bool:
        n = min(self._batch_size, len(self._queue))
        self._inflight = [self._queue.popleft() for _ in range(n)]
        try:
            written, bad = await self._write(self._inflight)
        except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
            self._put_back()
            await self._note_down(exc)
            return False
        self._inflight = []
        self._trim()  # rows recorded while the batch was in flight may overshoot the bound
        self.written_total += written
        if bad:
            self.dropped_total += bad
        if self.last_error is not None:
            log.info("agent state log: database back, writing again")
        self.last_error = None
        self._backoff = self._reconnect_min
        self._dropping = False
        return True

    async def _write(self, rows: list[StateRow]) -> tuple[int, int]:
        """(rows written, rows refused as bad data) for one batch."""
        async with self._connection() as conn:
            try:
                await conn.executemany(_INSERT_STATE, rows, timeout=self._timeout)
                return len(rows), 0
            except _BAD_DATA_ERRORS:
                pass
            written = bad = 0  # one bad row must not hold the others back forever
            for row in rows:
                try:
                    await conn.execute(_INSERT_STATE, *row, timeout=self._timeout)
                    written += 1
                except _BAD_DATA_ERRORS as exc:
                    bad += 1
                    log.error("agent state change of %s at %s refused by the database (%s: %s): dropped",
                              row[0], row[1].isoformat(), type(exc).__name__, exc)
            return written, bad

    def _put_back(self) -> None:
        self._queue.extendleft(reversed(self._inflight))
        self._inflight = []
        self._trim()

    def _trim(self) -> None:
        """Drop the oldest rows beyond ``max_rows`` (never rows being written)."""
        excess = len(self._queue) - self._max_rows
        if excess > 0:
            for _ in range(excess):
                self._queue.popleft()
            self._count_drop(excess)

    async def _note_down(self, exc: BaseException) -> None:
        first = self.last_error is None
        self.last_error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, TRANSIENT_DB_ERRORS):
            await self._close_conn()
        self._retry_at = time.monotonic() + self._backoff
        (log.warning if first else log.debug)(
            "agent state log cannot write (%s): %d changes kept, retry in %.1fs",
            self.last_error, self.queue_depth, self._backoff)
        self._backoff = min(self._backoff * 2, self._reconnect_max)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if isinstance(self._db, asyncpg.Pool):
            async with self._db.acquire(timeout=self._timeout) as conn:
                yield conn
            return
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._db, timeout=self._timeout,
                                               server_settings={"application_name": "switchboard-agent-log"})
            log.info("agent state log connected to %s", redact_dsn(self._db))
        yield self._conn

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        await close_connection(conn)
