"""The event writer: the one path from call events to PostgreSQL.

``submit()`` never blocks and never awaits: it validates the event, encodes
its data once and appends it to a bounded in-memory queue. A background task
takes batches off the queue and writes each one in a single transaction
(COPY into a temp table, then ``INSERT ... ON CONFLICT DO NOTHING`` and the
``calls`` upsert; see ``batch_sql``), so a replayed event writes once.

When PostgreSQL is unreachable, batches go to the disk spool (fsync'd per
batch) and the writer reconnects with backoff; once connected it replays the
spool oldest-first *before* anything newer, so events reach the database in
the order they were accepted. While the spool holds anything, new batches are
spooled behind it. A full queue spills straight to the spool. Only when the
queue and the spool are both full does ``submit`` refuse, with
``WriterOverloaded`` (the event was not accepted; the caller decides).

Durability: an event is safe across a crash (kill -9) once it is in the
database or the spool; the queue in between holds at most about
``flush_interval`` worth of events. ``stop()`` writes or spools everything.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from switchboard.config import DatabaseSettings, redact_dsn
from switchboard.events import CallEvent
from switchboard.store import batch_sql
from switchboard.store.errors import TRANSIENT_DB_ERRORS, WriterClosed, WriterOverloaded
from switchboard.store.pool import close_connection
from switchboard.store.spool import Record, Spool, SpoolFull

log = logging.getLogger("switchboard.store.writer")

# One encoder for every event: json.dumps with non-default options builds a new encoder per
# call, which was half the cost of to_record (bench/RESULTS.md, store_write).
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


# The writer's session: JIT compilation of the batch statement costs far more than it saves on
# 2,000 rows (bench/RESULTS.md, store_write; batch_sql's docstring).
SESSION_SETTINGS = {"application_name": "switchboard-writer", "jit": "off"}


def to_record(event: CallEvent) -> Record:
    """Validate and encode one event; ValueError/TypeError if it can never be stored."""
    if not isinstance(event.call_id, str) or not event.call_id or "\x00" in event.call_id:
        raise ValueError(f"bad call_id {event.call_id!r}")
    if not isinstance(event.seq, int) or isinstance(event.seq, bool) or not 1 <= event.seq < 2**31:
        raise ValueError(f"bad seq {event.seq!r} for call {event.call_id}")
    if not isinstance(event.ts, datetime) or event.ts.tzinfo is None:
        raise ValueError(f"ts must be a timezone-aware datetime (call {event.call_id} seq {event.seq})")
    kind = str(event.kind)
    if not kind or "\x00" in kind:
        raise ValueError(f"bad kind {event.kind!r}")
    data_json = _encode_json(event.data)
    if "\\u0000" in data_json:
        raise ValueError(f"data holds a NUL character (call {event.call_id} seq {event.seq})")
    return (event.call_id, event.seq, event.ts, kind, data_json)


class EventWriter:
    """Batched, idempotent, spool-backed writer of call events.

    Counters (read them for metrics): ``queue_depth``, ``spool_bytes``,
    ``near_full``, ``written_total`` (events newly inserted), ``duplicates_total``
    (events already present: a replay of a batch whose commit's answer was lost in a
    cut counts here, not in ``written_total``), ``batches``, ``spooled_total``, ``replayed_total``,
    ``accepted_total``, ``rejected_total``, ``db_connected``, ``last_error``.
    """

    name = "store-writer"

    def __init__(
        self,
        settings: DatabaseSettings,
        *,
        dsn: str | None = None,
        spool_dir: str | Path | None = None,
        connect_timeout: float = 5.0,
        reconnect_min: float = 0.2,
        reconnect_max: float = 5.0,
        stop_timeout: float = 30.0,
        segment_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.settings = settings
        self._dsn = dsn or settings.dsn
        self._spool = Spool(spool_dir or settings.spool_dir, max_bytes=settings.spool_max_bytes,
                            segment_bytes=segment_bytes)
        self._connect_timeout = connect_timeout
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._stop_timeout = stop_timeout
        self._batch_size = max(1, settings.batch_size)
        self._timeout = settings.command_timeout
        self._queue: collections.deque[Record] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._retry_at = 0.0
        self._backoff = reconnect_min
        self._order = 0
        self._inflight = 0
        self._stopping = False
        self._closed = False
        # counters
        self.written_total = 0
        self.duplicates_total = 0
        self.batches = 0
        self.spooled_total = 0
        self.replayed_total = 0
        self.accepted_total = 0
        self.rejected_total = 0
        self.last_error: str | None = None

    # -- counters ------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def spool_bytes(self) -> int:
        return self._spool.bytes

    @property
    def near_full(self) -> bool:
        return self._spool.near_full

    @property
    def db_connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def stats(self) -> dict[str, Any]:
        return {
            "queue_depth": self.queue_depth, "spool_bytes": self.spool_bytes, "near_full": self.near_full,
            "written_total": self.written_total, "duplicates_total": self.duplicates_total,
            "batches": self.batches, "spooled_total": self.spooled_total,
            "replayed_total": self.replayed_total, "accepted_total": self.accepted_total,
            "rejected_total": self.rejected_total, "db_connected": self.db_connected,
            "last_error": self.last_error,
        }

    # -- producer side ---------------------------------------------------------

    def submit(self, event: CallEvent) -> None:
        """Accept one event without blocking. Raises ValueError for an event that can never
        be stored, WriterOverloaded when queue and spool are both full, WriterClosed after stop."""
        if self._closed:
            raise WriterClosed("writer is stopped")
        rec = to_record(event)
        if len(self._queue) >= self.settings.queue_size:
            self._spill(rec)
        else:
            self._queue.append(rec)
        self.accepted_total += 1
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    def _spill(self, rec: Record) -> None:
        """Queue full: move the queue and this event to the spool, in order (rare, blocking)."""
        batch = [*self._queue, rec]
        self._order += 1
        try:
            self._spool.append(self._order, batch, fresh_file=True)
        except (SpoolFull, OSError) as exc:
            self.rejected_total += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.critical("event writer overloaded, event REFUSED (call %s seq %d): %s", rec[0], rec[1], exc)
            raise WriterOverloaded(str(exc)) from exc
        self._queue.clear()
        self.spooled_total += len(batch)
        log.warning("event queue full (%d): spilled %d events to the spool", self.settings.queue_size, len(batch))

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self._spool.open)
        self._order = self._spool.next_order_floor()
        self._closed = False
        self._stopping = False
        await self._ensure_conn()
        self._task = asyncio.create_task(self._run(), name="store-writer")
        log.info("event writer started (db %s, spool %s: %d bytes)",
                 "up" if self.db_connected else "DOWN", self._spool.directory, self.spool_bytes)

    async def stop(self) -> None:
        """Write (or spool) everything accepted, then close the connection."""
        self._closed = True
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=self._stop_timeout)
            except TimeoutError:
                log.error("event writer did not finish within %.1fs: cancelling", self._stop_timeout)
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                if self._queue:  # last resort: keep what is left on disk
                    batch = list(self._queue)
                    self._order += 1
                    self._spool.append(self._order, batch, fresh_file=True)
                    self._queue.clear()
                    self.spooled_total += len(batch)
            self._task = None
        await self._close_conn()
        log.info("event writer stopped: %s", self.stats())

    async def flush(self, *, timeout: float) -> None:
        """Wait until everything accepted so far is in the database (tests, shutdown checks)."""
        deadline = time.monotonic() + timeout
        while self._queue or self._inflight or self._spool.has_data():
            if time.monotonic() > deadline:
                raise TimeoutError(f"writer not flushed after {timeout}s: {self.stats()}")
            self._wake.set()
            await asyncio.sleep(0.02)

    # -- connection --------------------------------------------------------------

    async def _ensure_conn(self) -> bool:
        """True when a batch may be sent now (connected, and not backing off after a failure)."""
        now = time.monotonic()
        if self.db_connected:
            return now >= self._retry_at
        if now < self._retry_at:
            return False
        try:
            conn = await asyncpg.connect(
                self._dsn, timeout=self._connect_timeout, command_timeout=self._timeout,
                server_settings=SESSION_SETTINGS,
            )
            try:
                await conn.execute(batch_sql.CREATE_TEMP, timeout=self._timeout)
            except BaseException:
                conn.terminate()
                raise
        except TRANSIENT_DB_ERRORS as exc:
            self._note_down(exc)
            return False
        except asyncpg.PostgresError as exc:  # e.g. database missing, auth: keep retrying, loudly
            self._note_down(exc)
            return False
        self._conn = conn
        self._backoff = self._reconnect_min
        self._retry_at = 0.0
        log.info("event writer connected to %s", redact_dsn(self._dsn))
        return True

    def _note_down(self, exc: BaseException) -> None:
        first = self.last_error is None or self._backoff == self._reconnect_min
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self._reconnect_max)
        (log.warning if first else log.debug)("database unreachable (%s): spooling, retry in %.1fs",
                                              self.last_error, self._retry_at - time.monotonic())

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        await close_connection(conn)

    # -- the loop ----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._stopping and len(self._queue) < self._batch_size:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.settings.flush_interval)
                except TimeoutError:
                    pass
            self._wake.clear()
            if not self._stopping and not self.db_connected and not self._queue:
                await self._ensure_conn()  # idle after an outage: reconnect (with back-off) so readiness returns
            if self._spool.has_data() and await self._ensure_conn():
                await self._replay_spool()
            while self._queue:
                n = min(self._batch_size, len(self._queue))
                batch = [self._queue.popleft() for _ in range(n)]
                self._order += 1
                order = self._order
                self._inflight = n
                try:
                    if self._spool.has_data() or not await self._ensure_conn() or not await self._write(batch):
                        await self._to_spool(order, batch)
                finally:
                    self._inflight = 0
                if not self._stopping and len(self._queue) < self._batch_size:
                    break
            if self._stopping and not self._queue:
                if self._spool.has_data() and self.db_connected:
                    continue  # one more replay pass while the database is up
                return

    async def _write(self, batch: list[Record]) -> bool:
        """One transaction for one batch; False (connection dropped) when the database failed."""
        conn = self._conn
        assert conn is not None
        try:
            async with conn.transaction():
                await conn.copy_records_to_table(
                    batch_sql.TEMP_TABLE, records=batch, columns=batch_sql.COPY_COLUMNS, timeout=self._timeout
                )
                row = await conn.fetchrow(batch_sql.WRITE_BATCH, timeout=self._timeout)
        except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
            transient = isinstance(exc, TRANSIENT_DB_ERRORS)
            if not transient:
                log.error("batch of %d events failed (%s: %s): kept in the spool, will retry",
                          len(batch), type(exc).__name__, exc)
            await self._close_conn() if transient else None
            self._note_down(exc)
            return False
        inserted = int(row["inserted"]) if row else 0
        self._backoff = self._reconnect_min
        self.written_total += inserted
        self.duplicates_total += len(batch) - inserted
        self.batches += 1
        return True

    async def _to_spool(self, order: int, batch: list[Record]) -> None:
        while True:
            try:
                await asyncio.to_thread(self._spool.append, order, batch)
                self.spooled_total += len(batch)
                return
            except (SpoolFull, OSError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.critical("cannot spool %d events (%s): holding them in memory", len(batch), exc)
                if self.db_connected and await self._write(batch):
                    return
                await asyncio.sleep(1.0)
                await self._ensure_conn()

    async def _replay_spool(self) -> None:
        for segment in self._spool.segments():
            self._spool.seal(segment)
            try:
                records = await asyncio.to_thread(self._spool.read, segment)
            except FileNotFoundError:
                continue
            for i in range(0, len(records), self._batch_size):
                if not await self._write(records[i:i + self._batch_size]):
                    return  # database went away again; the segment stays, replayed later from its start
            await asyncio.to_thread(self._spool.remove, segment)
            self.replayed_total += len(records)
            log.info("replayed spool segment %d (%d events); %d bytes left", segment, len(records),
                     self.spool_bytes)
