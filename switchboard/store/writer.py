"""The event writer: the one path from call events to PostgreSQL.

``submit()`` never blocks and never awaits: it validates the event, encodes
its data once and appends it to a bounded in-memory queue. A background task
takes batches off the queue and writes each one in a single transaction
(COPY into a temp table, then ``INSERT ... ON CONFLICT DO NOTHING`` and the
``calls`` upsert; see ``batch_sql``), so a replayed event writes once.

Pipelining: with a second batch ready, the writer works on two connections at
once. Batch N+1 is COPY'd and its events inserted (step 1) while batch N, whose
step 1 is done, upserts the side tables and commits (step 2) on the other; N+1's
step 2 starts only after N committed, so the ``calls`` rows change batch after
batch as with one connection. Step 1 of N+1 does not see N's uncommitted events:
an event in both waits on N's outcome in the unique index (then counts as not
new), and a ``call.started`` of a call whose ``call.started`` is in N is not
overlapped at all (N+1 starts after N committed, so the check for a stored one
sees it). A batch whose step 1 left any staged row out (a duplicate) is rolled
back and written whole with the one-statement path, never overlapped. If N
fails, N+1 is rolled back: both are spooled, in order.

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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.transaction import Transaction

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

# asyncpg keeps a statement prepared (parsed and planned once per connection) only up to this many
# characters of SQL; its default (15 KiB) is below the batch statements, which were then parsed,
# planned and described again for every batch (bench/RESULTS.md, store_write).
MAX_CACHED_SQL = 64 * 1024


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


@dataclass(eq=False)
class _Staged:
    """A batch between step 1 (COPY + events inserted) and its commit, on ``conn``."""

    conn: asyncpg.Connection
    tr: Transaction | None    # None: rolled back already (a staged event was stored: write it whole)
    batch: list[Record]
    order: int
    inserted: int             # events step 1 inserted; -1 when it failed on one already stored
    started: frozenset[str]   # call ids of the batch's call.started events


def _started_calls(batch: list[Record]) -> frozenset[str]:
    return frozenset(r[0] for r in batch if r[3] == "call.started")


class EventWriter:
    """Batched, idempotent, spool-backed writer of call events.

    Counters (read them for metrics): ``queue_depth``, ``spool_bytes``,
    ``near_full``, ``written_total`` (events newly inserted), ``duplicates_total``
    (events already present: a replay of a batch whose commit's answer was lost in a
    cut counts here, not in ``written_total``), ``batches``, ``overlapped_total`` (batches whose
    step 1 ran while the one before committed), ``spooled_total``, ``replayed_total``,
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
        self._partner: asyncpg.Connection | None = None   # the pipeline's second connection
        self._partner_retry_at = 0.0
        self._retry_at = 0.0
        self._backoff = reconnect_min
        self._order = 0
        self._held: dict[int, list[Record]] = {}   # batches taken off the queue, not yet written or spooled
        self._stopping = False
        self._closed = False
        # counters
        self.written_total = 0
        self.duplicates_total = 0
        self.batches = 0
        self.overlapped_total = 0
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
            "batches": self.batches, "overlapped_total": self.overlapped_total, "spooled_total": self.spooled_total,
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
                # last resort: keep on disk what is left. The batches that were being written (or
                # not: a replay of one that committed only counts its duplicates) under their own
                # order numbers, which sort them before anything spilled after them; then the queue.
                for order in sorted(self._held):
                    self._spool.append(order, self._held[order], fresh_file=True)
                    self.spooled_total += len(self._held[order])
                self._held.clear()
                if self._queue:
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
        while self._queue or self._held or self._spool.has_data():
            if time.monotonic() > deadline:
                raise TimeoutError(f"writer not flushed after {timeout}s: {self.stats()}")
            self._wake.set()
            await asyncio.sleep(0.02)

    # -- connection --------------------------------------------------------------

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(
            self._dsn, timeout=self._connect_timeout, command_timeout=self._timeout,
            server_settings=SESSION_SETTINGS, max_cacheable_statement_size=MAX_CACHED_SQL,
        )
        try:
            await conn.execute(batch_sql.CREATE_TEMP, timeout=self._timeout)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def _ensure_conn(self) -> bool:
        """True when a batch may be sent now (connected, and not backing off after a failure)."""
        now = time.monotonic()
        if self.db_connected:
            return now >= self._retry_at
        if now < self._retry_at:
            return False
        try:
            conn = await self._connect()
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

    def _partner_up(self) -> bool:
        return self._partner is not None and not self._partner.is_closed()

    async def _ensure_partner(self) -> None:
        """Open the pipeline's second connection if it is missing; failing only means no overlap
        for a while (``reconnect_max``), batches go on one connection."""
        if self._partner_up() or time.monotonic() < self._partner_retry_at:
            return
        try:
            self._partner = await self._connect()
        except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
            self._partner = None
            self._partner_retry_at = time.monotonic() + self._reconnect_max
            log.info("event writer: second connection failed (%s: %s), writing on one", type(exc).__name__, exc)

    def _note_down(self, exc: BaseException) -> None:
        first = self.last_error is None or self._backoff == self._reconnect_min
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self._reconnect_max)
        (log.warning if first else log.debug)("database unreachable (%s): spooling, retry in %.1fs",
                                              self.last_error, self._retry_at - time.monotonic())

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        partner, self._partner = self._partner, None
        await close_connection(conn)
        await close_connection(partner)

    async def _drop(self, conn: asyncpg.Connection) -> None:
        """Close one connection that failed (the writer reconnects it later)."""
        if conn is self._conn:
            self._conn = None
        elif conn is self._partner:
            self._partner = None
        await close_connection(conn)

    async def _failed(self, conn: asyncpg.Connection, exc: BaseException, n: int) -> None:
        if isinstance(exc, TRANSIENT_DB_ERRORS):
            await self._drop(conn)
        else:
            log.error("batch of %d events failed (%s: %s): kept in the spool, will retry", n, type(exc).__name__, exc)
        self._note_down(exc)

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
            staged: _Staged | None = None
            while self._queue:
                batch, order = self._take()
                staged = await (self._begin(batch, order) if staged is None else self._next(staged, batch, order))
                if not self._stopping and len(self._queue) < self._batch_size:
                    break
            if staged is not None:   # no batch to overlap with: commit it now
                await self._end(staged)
            if self._stopping and not self._queue:
                if self._spool.has_data() and self.db_connected:
                    continue  # one more replay pass while the database is up
                return

    def _take(self) -> tuple[list[Record], int]:
        n = min(self._batch_size, len(self._queue))
        batch = [self._queue.popleft() for _ in range(n)]
        self._order += 1
        self._held[self._order] = batch
        return batch, self._order

    async def _spool_held(self, order: int) -> None:
        """A batch taken off the queue that was not written: to the spool (in order of the calls)."""
        await self._to_spool(order, self._held[order])
        del self._held[order]

    async def _begin(self, batch: list[Record], order: int) -> _Staged | None:
        """Step 1 of a batch on the main connection (nothing else in flight), or the spool."""
        if self._spool.has_data() or not await self._ensure_conn():
            await self._spool_held(order)
            return None
        if len(self._queue) >= self._batch_size:   # another batch is ready: pipelining pays
            await self._ensure_partner()
        assert self._conn is not None
        staged = await self._stage(self._conn, batch, order, _started_calls(batch))
        if staged is None:
            await self._spool_held(order)
        return staged

    async def _end(self, staged: _Staged) -> None:
        """Step 2 and commit of ``staged``, nothing else in flight; or its whole batch in one statement
        when step 1 left a staged row out; or the spool."""
        if staged.inserted == len(staged.batch):
            ok = await self._commit(staged)
        else:  # an event stored already (or a second call.started): roll back, write it whole
            ok = await self._rollback(staged) and await self._write(staged.batch, staged.conn)
        if ok:
            del self._held[staged.order]
        else:
            await self._spool_held(staged.order)

    async def _next(self, staged: _Staged, batch: list[Record], order: int) -> _Staged | None:
        """Commit ``staged`` while step 1 of ``batch`` runs on the other connection, when that is safe."""
        other = self._partner if staged.conn is self._conn else self._conn
        started = _started_calls(batch)
        if (other is None or other.is_closed() or time.monotonic() < self._retry_at
                or staged.inserted < len(staged.batch) or not started.isdisjoint(staged.started)):
            await self._end(staged)
            return await self._begin(batch, order)
        self.overlapped_total += 1
        ok, nxt = await asyncio.gather(self._commit(staged), self._stage(other, batch, order, started))
        if ok:
            del self._held[staged.order]
        else:  # spooled first; the next batch must not commit before it: rolled back, spooled behind it
            await self._spool_held(staged.order)
            if nxt is not None:
                await self._rollback(nxt)
                nxt = None
        if nxt is None:
            await self._spool_held(order)
        return nxt

    async def _stage(self, conn: asyncpg.Connection, batch: list[Record], order: int,
                     started: frozenset[str]) -> _Staged | None:
        """Step 1: open a transaction, COPY the batch, insert its events; None if the database failed."""
        staged = _Staged(conn, conn.transaction(), batch, order, 0, started)
        assert staged.tr is not None
        try:
            await staged.tr.start()
            await conn.copy_records_to_table(
                batch_sql.TEMP_TABLE, records=batch, columns=batch_sql.COPY_COLUMNS, timeout=self._timeout
            )
            staged.inserted = int(await conn.fetchval(batch_sql.INSERT_EVENTS, timeout=self._timeout))
        except asyncpg.UniqueViolationError:   # one of them is stored already (a replay): written whole later
            if not await self._rollback(staged):
                return None
            staged.inserted = -1
        except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
            await self._rollback(staged)
            await self._failed(conn, exc, len(batch))
            return None
        return staged

    async def _commit(self, staged: _Staged) -> bool:
        """Step 2 (valid only when step 1 inserted every staged row) and the commit."""
        conn = staged.conn
        assert staged.tr is not None
        try:
            await conn.fetchval(batch_sql.UPDATE_SIDE_TABLES, timeout=self._timeout)
            await staged.tr.commit()
        except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
            await self._rollback(staged)
            await self._failed(conn, exc, len(staged.batch))
            return False
        self._written(len(staged.batch), staged.inserted)
        return True

    async def _rollback(self, staged: _Staged) -> bool:
        """Roll back a staged transaction; a connection that cannot is closed (False)."""
        conn, tr, staged.tr = staged.conn, staged.tr, None
        if tr is None:
            return True
        if conn.is_closed():
            return False
        try:
            await tr.rollback()
        except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError, asyncpg.InterfaceError):
            await self._drop(conn)
            return False
        return True

    def _written(self, n: int, inserted: int) -> None:
        self._backoff = self._reconnect_min
        self.written_total += inserted
        self.duplicates_total += n - inserted
        self.batches += 1

    async def _write(self, batch: list[Record], conn: asyncpg.Connection | None = None) -> bool:
        """One transaction for one batch, one statement; False (connection dropped) when the database failed."""
        conn = conn or self._conn
        assert conn is not None
        try:
            async with conn.transaction():
                await conn.copy_records_to_table(
                    batch_sql.TEMP_TABLE, records=batch, columns=batch_sql.COPY_COLUMNS, timeout=self._timeout
                )
                row = await conn.fetchrow(batch_sql.WRITE_BATCH, timeout=self._timeout)
        except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
            await self._failed(conn, exc, len(batch))
            return False
        self._written(len(batch), int(row["inserted"]) if row else 0)
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
