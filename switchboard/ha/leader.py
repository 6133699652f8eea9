"""Leadership among N instances of the service (active/standby, docs/ha.md).

Every instance runs the same configuration against the same PostgreSQL and
Asterisk. One **leads**: it holds a PostgreSQL session-level advisory lock on
a connection of its own, and the **leader epoch** it took (``leader_epoch``,
bumped at every take-over). The others are **standbys**: logged in to AMI and
PostgreSQL, flows and agents loaded, sending no AMI action but read-only ones
(the AMI client's gate, ``AmiClient.gate``, is :meth:`Leadership.may_send`).

* Parts that act (the ACD, the heartbeat, the re-adoption, the reconciliation,
  the callback sweep) are registered with :meth:`Leadership.when_leading`: they
  start when this instance takes the lead, in the order they were added.
* **Take-over**: a standby tries the lock every ``poll_s``; once it holds it, it
  bumps the epoch (above the one the heartbeat carries), writes the heartbeat
  carrying the new epoch (which fences an old leader still talking to Asterisk:
  until then it sends nothing else, role ``TAKING``), waits ``takeover_grace_s``
  (the old leader reads the heartbeat every ``fence_watch_s``), then starts the
  acting parts (the re-adoption resumes every caller where it was).
* **Fencing is the epoch in Asterisk**: the leader reads the heartbeat every
  ``fence_watch_s`` and before each beat; one carrying a higher epoch than its own
  stops it at once (the gate closes: no AMI action, no AGI command, no call event
  written) and the process is asked to exit; its supervisor (systemd) starts it
  again, as a standby. A beat never overwrites a higher epoch (read, then write;
  the race left is in docs/ha.md).
* **A leader that loses its lock connection keeps acting** (the writer spools)
  while the heartbeat carries its epoch, and tries every ``poll_s`` to take the
  lock back: got, with the epoch in the table still its own, it leads on; the lock
  held by another, or a higher epoch in the table, fences it.
* **Hand-over**: a leader asked to stop closes its gate and releases the lock
  first (:meth:`Leadership.step_down_part`, the last part started), so a standby
  leads within ``poll_s`` and the heartbeat never goes stale. Before releasing it,
  it marks its epoch released in the table (gate already closed: it acts no more);
  the standby that takes over after such a hand-over skips the grace, which is
  there for an old leader that may still act (crashed mid-action, or cut off).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from switchboard.config import HaSettings
from switchboard.store.errors import TRANSIENT_DB_ERRORS
from switchboard.store.leader import (
    LeaderRow,
    bump_epoch,
    current_leader,
    mark_released,
    probe,
    released_cleanly,
    try_lock,
)
from switchboard.telephony import heartbeat as hb

log = logging.getLogger("switchboard.ha")

#: The exit status of a process that was fenced (its supervisor restarts it as a standby).
EXIT_FENCED = 75

#: A heartbeat written less than this long ago (seconds) may be a live old leader's: a new leader
#: waits ``takeover_grace_s`` after writing its epoch. An older one: nobody beats, no wait.
GRACE_IF_BEAT_WITHIN_S = 5.0


class Role(enum.StrEnum):
    STANDBY = "standby"
    TAKING = "taking"      # holds the lock, epoch bumped: writes its heartbeat, then waits the grace
    LEADER = "leader"
    FENCED = "fenced"      # led, lost the lead: acts no more, about to exit


class Leadership:
    """The leadership of this instance, as a part (start it after the AMI client)."""

    name = "leadership"

    def __init__(self, settings: HaSettings, dsn: str, *, ami: Any, instance: str, api_url: str = "",
                 on_fenced: Callable[[str], None] = lambda reason: None,
                 on_lead: list[Callable[[], Awaitable[Any]]] | None = None,
                 connect_timeout: float = 5.0) -> None:
        self.settings = settings
        self.dsn = dsn
        self.ami = ami
        self.instance = instance
        self.api_url = api_url
        self.on_fenced = on_fenced
        self.on_lead = list(on_lead or [])   # run once leading, before the acting parts start
        self.connect_timeout = connect_timeout
        self.role = Role.STANDBY
        self.epoch = 0               # the epoch this instance leads with (0: never led)
        self.seen_epoch = 0          # the epoch the heartbeat in Asterisk carries
        self.seen_beat = 0           # and the unix time of that beat
        self.takeovers = 0
        self.fenced_reason = ""
        self.led_at: float | None = None          # time.time() this instance took the lead
        self.lock_at: float | None = None         # time.monotonic() the lock was acquired
        self.takeover_s: float | None = None      # lock acquired -> acting parts started
        self.leader: LeaderRow | None = None      # who leads, as the table says (read by standbys)
        self.lock_lost_at: float | None = None    # time.monotonic() a leader lost its lock connection
        self.lock_losses = 0                      # times this leader went on without its lock
        self.beats_rewritten = 0                  # a lower epoch found in the heartbeat and written over
        self.on_rewritten: list[Callable[[], Any]] = []   # called each time (metrics)
        self._conn: asyncpg.Connection | None = None
        self._parts: list[Any] = []               # acting parts, in start order
        self._started: list[Any] = []
        self._parts_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._grace = settings.takeover_grace_s
        self.grace_s: float | None = None         # the grace the last take-over waited (0: skipped)
        self.grace_skipped_why = ""               # why it was skipped ("" when waited)
        self.handed_over = False                  # this leader marked its release (a clean hand-over)
        self._reading: asyncio.Future[int | None] | None = None

    # ------------------------------------------------------------------ the gate

    def acting(self) -> bool:
        """May this instance act now (send AMI actions, run AGI, write call events)?"""
        return self.role is Role.LEADER

    def may_send(self, action: Any) -> bool:
        """The AMI gate: the leader sends anything; one taking the lead only its heartbeat."""
        if self.role is Role.LEADER:
            return True
        return (self.role is Role.TAKING and getattr(action, "name", "") == "Setvar"
                and getattr(action, "headers", {}).get("Variable") == hb.VARIABLE)

    async def confirm(self, action: Any) -> bool:
        """Before each AMI action (``AmiClient.confirm``): a leader holding its lock goes on; one
        without it reads the heartbeat first (one read shared by the actions waiting for it) and
        is fenced by a higher epoch, so it sends nothing once a standby's epoch is in Asterisk
        (the race left: the standby's write landing between that read and the action)."""
        if self.role is not Role.LEADER or self.lock_lost_at is None:
            return self.may_send(action)
        reading = self._reading
        if reading is None or reading.done():
            reading = self._reading = asyncio.ensure_future(self._read_epoch())
        epoch = await asyncio.shield(reading)
        if epoch is not None and epoch > self.epoch:
            self.fence(f"the heartbeat in Asterisk carries epoch {epoch}, above ours ({self.epoch})")
        return self.may_send(action)

    def holds_lock(self) -> bool:
        """Does this leader still hold its lock (False: it acts on the epoch in Asterisk alone)?"""
        return self.role is Role.LEADER and self.lock_lost_at is None

    def guard(self, sink: Callable[[Any], None]) -> Callable[[Any], None]:
        """``sink`` that drops what comes while this instance does not lead."""
        def guarded(item: Any) -> None:
            if self.role is Role.LEADER:
                sink(item)
        return guarded

    def status(self) -> dict[str, Any]:
        return {"role": str(self.role), "epoch": self.epoch, "heartbeat_epoch": self.seen_epoch,
                "instance": self.instance, "leader": self.leader.instance if self.leader else "",
                "leader_url": self.leader.api_url if self.leader else "",
                "leader_epoch": self.leader.epoch if self.leader else 0,
                "lock": self.holds_lock(),
                "lock_lost_s": (round(time.monotonic() - self.lock_lost_at, 1)
                                if self.lock_lost_at is not None and self.role is Role.LEADER else None),
                "takeover_s": round(self.takeover_s, 3) if self.takeover_s is not None else None,
                "grace_s": self.grace_s, "grace_skipped": self.grace_skipped_why or None}

    # ------------------------------------------------------------------ acting parts

    def when_leading(self, part: Any) -> Any:
        """``part`` wrapped: started when this instance leads (at once if it already does)."""
        return _LeaderOnly(self, part)

    async def _start_part(self, part: Any) -> None:
        async with self._parts_lock:
            if part in self._started or self.role is not Role.LEADER:
                return
            log.info("leading: starting %s", part.name)
            await part.start()
            self._started.append(part)

    async def _stop_part(self, part: Any) -> None:
        if part in self._started:
            self._started.remove(part)
            await part.stop()

    def step_down_part(self) -> Any:
        """A part to add last: stopping it (first, on shutdown) hands the lead over."""
        leadership = self

        class _StepDown:
            name = "leadership-hand-over"

            async def start(self) -> None:
                return None

            async def stop(self) -> None:
                await leadership.step_down("stopping")

        return _StepDown()

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        with contextlib.suppress(*TRANSIENT_DB_ERRORS, asyncpg.PostgresError, OSError, TimeoutError):
            await self._try_lead()
        if self.role is Role.STANDBY:
            log.info("standby (instance %s): %s leads", self.instance, self.leader.instance if self.leader else "nobody")
        self._tasks = [asyncio.create_task(self._campaign(), name="ha-campaign"),
                       asyncio.create_task(self._watch(), name="ha-watch")]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._release()

    async def step_down(self, reason: str) -> None:
        """Stop acting and release the lock (a deliberate hand-over). A leader holding its lock
        marks the release first (its gate is closed by then), so its successor skips the grace."""
        clean = self.role is Role.LEADER and self.lock_lost_at is None
        if self.role in (Role.LEADER, Role.TAKING):
            self.role = Role.FENCED
            self.fenced_reason = reason
            log.warning("leader epoch %d steps down (%s): the lock is released", self.epoch, reason)
        conn = self._conn
        if clean and conn is not None and not conn.is_closed():
            try:
                self.handed_over = await mark_released(conn, self.epoch, timeout=self.settings.probe_timeout_s)
            except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError, OSError, TimeoutError) as exc:
                log.warning("leader epoch %d: release not marked (%r); the next leader waits the grace",
                            self.epoch, exc)
            if self.handed_over:
                log.warning("HANDED OVER: leader epoch %d marked its release; the next leader skips the grace",
                            self.epoch)
        await self._release()

    def fence(self, reason: str) -> None:
        """Stop acting at once (the lead is lost); the process is asked to exit."""
        if self.role is Role.TAKING:   # never acted: back to standing by, the lock let go
            self.role = Role.STANDBY
            log.error("take-over with epoch %d abandoned: %s", self.epoch, reason)
            asyncio.get_running_loop().create_task(self._release())
            return
        if self.role is not Role.LEADER:
            return
        self.role = Role.FENCED
        self.fenced_reason = reason
        log.error("FENCED: leader epoch %d stops acting: %s", self.epoch, reason)
        self.on_fenced(reason)

    # ------------------------------------------------------------------ internals

    async def _connect(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            conn = await asyncpg.connect(self.dsn, timeout=self.connect_timeout,
                                         server_settings={"application_name": f"switchboard-leader {self.instance}"})
            conn.add_termination_listener(self._on_conn_lost)
            self._conn = conn
        return self._conn

    def _on_conn_lost(self, conn: Any) -> None:
        if conn is not self._conn or self._stopping:
            return
        self._conn = None
        if self.role is Role.LEADER:
            self._lock_lost("the lock's PostgreSQL connection was lost")
        elif self.role is Role.TAKING:
            self.fence("the lock's PostgreSQL connection was lost")

    def _lock_lost(self, reason: str) -> None:
        """The leader goes on without its lock while the heartbeat carries its epoch."""
        if self.role is not Role.LEADER or self.lock_lost_at is not None:
            return
        self.lock_lost_at = time.monotonic()
        self.lock_losses += 1
        log.error("LOCK LOST: leader epoch %d acts on while the heartbeat in Asterisk carries its epoch, "
                  "and tries to take the lock back (%s)", self.epoch, reason)

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await conn.close(timeout=2.0)   # ends the session: the lock is free
        except Exception:
            conn.terminate()

    async def _try_lead(self) -> bool:
        timeout = self.settings.probe_timeout_s
        conn = await self._connect()
        if not await try_lock(conn, self.settings.lock_key, timeout=timeout):
            self.leader = await current_leader(conn, timeout=timeout)
            return False
        self.lock_at = time.monotonic()
        seen = await self._read_epoch()
        released = await released_cleanly(conn, timeout=timeout)
        self._grace, self.grace_skipped_why = self.settings.takeover_grace_s, ""
        if time.time() - self.seen_beat >= GRACE_IF_BEAT_WITHIN_S:
            # nobody beat lately (the first start, or the leader died long ago): no one to wait for
            self._grace, self.grace_skipped_why = 0.0, "no recent heartbeat"
        elif released is not None and (seen or 0) <= released.epoch:
            # the leader before us closed its gate and let go: nothing of it can still come
            self._grace = 0.0
            self.grace_skipped_why = f"instance {released.instance} handed over epoch {released.epoch} cleanly"
        self.grace_s = self._grace
        self.epoch = await bump_epoch(conn, instance=self.instance, api_url=self.api_url, timeout=timeout,
                                      at_least=(seen or 0) + 1)
        self.leader = LeaderRow(self.epoch, self.instance, self.api_url)
        self.role = Role.TAKING
        log.warning("TAKING THE LEAD: instance %s holds the lock, epoch %d (%s)", self.instance, self.epoch,
                    f"grace skipped: {self.grace_skipped_why}" if self.grace_skipped_why
                    else f"grace {self._grace:g}s")
        await self._take_over()
        return True

    async def _take_over(self) -> None:
        """Write the new epoch into Asterisk, wait the grace, then act (role TAKING -> LEADER)."""
        if not await self._write_epoch():
            return   # AMI not there yet: tried again at the next poll, nothing sent meanwhile
        await asyncio.sleep(self._grace)
        if self.role is not Role.TAKING:
            return
        self.role = Role.LEADER
        self.led_at = time.time()
        self.takeovers += 1
        log.warning("LEADING: instance %s took the lead with epoch %d", self.instance, self.epoch)
        for hook in self.on_lead:
            try:
                await hook()
            except Exception:
                log.exception("take-over step failed; going on")
        for part in list(self._parts):
            try:
                await self._start_part(part)
            except Exception:
                log.exception("take-over: %s failed to start; going on", part.name)
        self.takeover_s = time.monotonic() - (self.lock_at or time.monotonic())
        log.warning("leader epoch %d acting %.3fs after taking the lock", self.epoch, self.takeover_s)

    async def _read_epoch(self) -> int | None:
        """The epoch the heartbeat in Asterisk carries (0: none), None when it cannot be read."""
        if not getattr(self.ami, "connected", False):
            return None
        try:
            got = await self.ami.send(hb.get_action(), timeout=2.0)
        except asyncio.CancelledError:
            raise
        except Exception:
            return None
        if not got.success:
            return None
        beat, epoch = hb.parse_beat(got.headers.get("Value") or "")
        self.seen_epoch, self.seen_beat = epoch, beat
        return epoch

    async def _write_epoch(self) -> bool:
        """Read the heartbeat, then write ours unless it carries a higher epoch (then: fenced)."""
        seen = await self._read_epoch()
        if seen is None:
            log.warning("heartbeat with epoch %d not written yet: Asterisk's heartbeat cannot be read", self.epoch)
            return False
        if seen > self.epoch:
            self.fence(f"the heartbeat in Asterisk carries epoch {seen}, above ours ({self.epoch})")
            return False
        try:
            resp = await self.ami.send(hb.put_action(int(time.time()), self.epoch), timeout=2.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("heartbeat with epoch %d not written yet: %r", self.epoch, exc)
            return False
        if not resp.success:
            log.warning("heartbeat with epoch %d refused: %s", self.epoch, resp.message)
            return False
        self.seen_epoch = self.epoch
        return True

    async def may_beat(self) -> bool:
        """Before each beat of the heartbeat part: still ours to write? (a higher epoch fences)."""
        if self.role is not Role.LEADER:
            return False
        seen = await self._read_epoch()
        if seen is None:
            return False
        if seen > self.epoch:
            self.fence(f"the heartbeat in Asterisk carries epoch {seen}, above ours ({self.epoch})")
            return False
        if 0 < seen < self.epoch:
            self._lower_found(seen)
        return self.role is Role.LEADER

    def _lower_found(self, epoch: int) -> None:
        """A lower epoch in the heartbeat than ours: an old leader's beat raced our take-over."""
        self.beats_rewritten += 1
        for hook in self.on_rewritten:
            hook()
        log.warning("the heartbeat carried epoch %d, below ours (%d): written over", epoch, self.epoch)

    async def _take_lock_back(self) -> None:
        """A leader without its lock: take it back, or learn that another leads."""
        timeout = self.settings.probe_timeout_s
        conn = await self._connect()
        got = await try_lock(conn, self.settings.lock_key, timeout=timeout)
        row = await current_leader(conn, timeout=timeout)
        if row is not None and row.epoch > self.epoch:
            self.leader = row
            self.fence(f"instance {row.instance} took the lead with epoch {row.epoch} while our lock was lost")
            await self._release()
            return
        if not got:   # our old session still holds it (PostgreSQL has not seen it die), or a standby
            log.info("leader epoch %d: the lock is not free yet; the heartbeat decides", self.epoch)
            return
        lost_s = time.monotonic() - (self.lock_lost_at or time.monotonic())
        self.lock_lost_at = None
        log.warning("LOCK BACK: leader epoch %d holds its lock again after %.1fs", self.epoch, lost_s)

    async def _campaign(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.poll_s)
            try:
                if self.role is Role.STANDBY:
                    await self._try_lead()
                elif self.role is Role.TAKING:
                    conn = self._conn
                    if conn is None or conn.is_closed():
                        self.fence("the lock's PostgreSQL connection is closed")
                        continue
                    await probe(conn, timeout=s.probe_timeout_s)
                    await self._take_over()
                elif self.role is Role.LEADER:
                    conn = self._conn
                    if self.lock_lost_at is not None or conn is None or conn.is_closed():
                        self._lock_lost("the lock's PostgreSQL connection is closed")
                        await self._take_lock_back()
                        continue
                    try:
                        await probe(conn, timeout=s.probe_timeout_s)
                    except TimeoutError:
                        # slow, maybe not lost: the session may still hold the lock; if PostgreSQL
                        # drops it, a standby's epoch in the heartbeat stops this leader
                        log.warning("leader epoch %d: no answer from the lock's connection within %.1fs",
                                    self.epoch, s.probe_timeout_s)
            except asyncio.CancelledError:
                raise
            except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError, OSError, TimeoutError) as exc:
                if self.role is Role.LEADER:
                    if self.lock_lost_at is None:
                        self._lock_lost(f"{type(exc).__name__}: {exc}")
                    else:
                        log.debug("lock not taken back: %r", exc)
                    await self._release()
                elif self.role is Role.TAKING:
                    self.fence(f"the lock's PostgreSQL connection failed: {type(exc).__name__}: {exc}")
                else:
                    log.debug("lock not tried: %r", exc)
                    await self._release()

    async def _watch(self) -> None:
        """Read the heartbeat's epoch from Asterisk: a higher one than ours means another leads;
        a lower one (an old leader's beat raced ours) is written over at once."""
        while True:
            leading = self.role is Role.LEADER
            await asyncio.sleep(self.settings.fence_watch_s if leading else self.settings.watch_s)
            epoch = await self._read_epoch()
            if epoch is None or self.role is not Role.LEADER:
                continue
            if epoch > self.epoch:
                self.fence(f"the heartbeat in Asterisk carries epoch {epoch}, above ours ({self.epoch})")
            elif 0 < epoch < self.epoch:
                self._lower_found(epoch)
                await self._write_epoch()


class _LeaderOnly:
    """A part that starts when its instance leads."""

    def __init__(self, leadership: Leadership, part: Any) -> None:
        self.leadership = leadership
        self.part = part
        self.name = f"{part.name} (when leading)"

    async def start(self) -> None:
        self.leadership._parts.append(self.part)
        await self.leadership._start_part(self.part)

    async def stop(self) -> None:
        await self.leadership._stop_part(self.part)
