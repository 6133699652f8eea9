"""Leadership among N instances of the service (active/standby, docs/ha.md).

Every instance runs the same configuration against the same PostgreSQL and
Asterisk. One **leads**: it holds a PostgreSQL session-level advisory lock on
a connection of its own, and the **leader epoch** it took (``leader_epoch``,
bumped at every take-over). The others are **standbys**: logged in to AMI and
PostgreSQL, flows and agents loaded, sending no AMI action but read-only ones
(the AMI client's gate, ``AmiClient.gate``, is :meth:`Leadership.acting`).

* Parts that act (the ACD, the heartbeat, the re-adoption, the reconciliation,
  the callback sweep) are registered with :meth:`Leadership.when_leading`: they
  start when this instance takes the lead, in the order they were added.
* **Take-over**: a standby tries the lock every ``poll_s``; once it holds it, it
  bumps the epoch, writes the heartbeat carrying the new epoch (which fences an
  old leader still talking to Asterisk), then starts the acting parts (the
  re-adoption resumes every caller where it was).
* **Fencing**: the leader probes its lock connection every ``poll_s`` and listens
  for its loss; every instance reads the heartbeat's epoch from Asterisk every
  ``watch_s``. A leader whose lock connection is lost, or that sees a higher
  epoch in the heartbeat, stops acting at once (the gate closes: no AMI action,
  no AGI command, no call event written) and asks the process to exit; its
  supervisor (systemd) starts it again, as a standby.
* **Hand-over**: a leader asked to stop closes its gate and releases the lock
  first (:meth:`Leadership.step_down_part`, the last part started), so a standby
  leads within ``poll_s`` and the heartbeat never goes stale.
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
from switchboard.store.leader import LeaderRow, bump_epoch, current_leader, probe, try_lock
from switchboard.telephony import heartbeat as hb

log = logging.getLogger("switchboard.ha")

#: The exit status of a process that was fenced (its supervisor restarts it as a standby).
EXIT_FENCED = 75


class Role(enum.StrEnum):
    STANDBY = "standby"
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
        self.takeovers = 0
        self.fenced_reason = ""
        self.led_at: float | None = None          # time.time() this instance took the lead
        self.lock_at: float | None = None         # time.monotonic() the lock was acquired
        self.takeover_s: float | None = None      # lock acquired -> acting parts started
        self.leader: LeaderRow | None = None      # who leads, as the table says (read by standbys)
        self._conn: asyncpg.Connection | None = None
        self._parts: list[Any] = []               # acting parts, in start order
        self._started: list[Any] = []
        self._parts_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # ------------------------------------------------------------------ the gate

    def acting(self) -> bool:
        """May this instance act now (send AMI actions, run AGI, write call events)?"""
        return self.role is Role.LEADER

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
                "takeover_s": round(self.takeover_s, 3) if self.takeover_s is not None else None}

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
        """Stop acting and release the lock (a deliberate hand-over)."""
        if self.role is Role.LEADER:
            self.role = Role.FENCED
            self.fenced_reason = reason
            log.warning("leader epoch %d steps down (%s): the lock is released", self.epoch, reason)
        await self._release()

    def fence(self, reason: str) -> None:
        """Stop acting at once (the lead is lost); the process is asked to exit."""
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
        if conn is self._conn and self.role is Role.LEADER and not self._stopping:
            self.fence("the lock's PostgreSQL connection was lost")

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
        self.epoch = await bump_epoch(conn, instance=self.instance, api_url=self.api_url, timeout=timeout)
        self.leader = LeaderRow(self.epoch, self.instance, self.api_url)
        self.role = Role.LEADER
        self.led_at = time.time()
        self.takeovers += 1
        log.warning("LEADING: instance %s took the lead with epoch %d", self.instance, self.epoch)
        await self._beat()
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
        self.takeover_s = time.monotonic() - self.lock_at
        log.warning("leader epoch %d acting %.3fs after taking the lock", self.epoch, self.takeover_s)
        return True

    async def _beat(self) -> None:
        """Write the heartbeat with the new epoch at once: it fences an old leader through Asterisk."""
        try:
            await self.ami.send(hb.put_action(int(time.time()), self.epoch), timeout=2.0)
            self.seen_epoch = self.epoch
        except Exception as exc:
            log.warning("heartbeat with epoch %d not written yet: %r", self.epoch, exc)

    async def _campaign(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.poll_s)
            try:
                if self.role is Role.STANDBY:
                    await self._try_lead()
                elif self.role is Role.LEADER:
                    conn = self._conn
                    if conn is None or conn.is_closed():
                        self.fence("the lock's PostgreSQL connection is closed")
                        continue
                    await probe(conn, timeout=s.probe_timeout_s)
            except asyncio.CancelledError:
                raise
            except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError, OSError, TimeoutError) as exc:
                if self.role is Role.LEADER:
                    self.fence(f"the lock's PostgreSQL connection failed: {type(exc).__name__}: {exc}")
                else:
                    log.debug("lock not tried: %r", exc)
                    await self._release()

    async def _watch(self) -> None:
        """Read the heartbeat's epoch from Asterisk: a higher one than ours means another leads."""
        while True:
            await asyncio.sleep(self.settings.watch_s)
            if not getattr(self.ami, "connected", False):
                continue
            try:
                got = await self.ami.send(hb.get_action(), timeout=2.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                continue
            _beat, epoch = hb.parse_beat((got.headers.get("Value") or "") if got.success else "")
            self.seen_epoch = epoch
            if self.role is Role.LEADER and epoch > self.epoch:
                self.fence(f"the heartbeat in Asterisk carries epoch {epoch}, above ours ({self.epoch})")


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
