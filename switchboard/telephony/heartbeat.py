"""The service's heartbeat: an Asterisk global variable.

Every ``interval`` seconds the service writes the current epoch into the global
``SWITCHBOARD_HEARTBEAT`` (AMI ``Setvar`` without a channel: the ``call`` write
class). The hotline dialplan compares ``${GLOBAL(SWITCHBOARD_HEARTBEAT)}`` with
``${EPOCH}``: when it is empty or older than ``HEARTBEAT_MAX_AGE`` (the service
is down, hung or restarting) new calls go to the plain fallback queue instead
of AsyncAGI.

Not AstDB: ``DBPut`` needs the AMI ``system`` class, and ``Setvar`` of ``DB()``
is refused on an AMI connection (DB is a dangerous function, AMI threads inhibit
escalations). With active/standby instances (``switchboard.ha``) the beat also
carries the leader's epoch: ``<unix time>:<epoch>``; the dialplan reads the part
before the colon, and each beat is written only after reading the current one: a beat
carrying a higher epoch than the leader's is never written over (the leader is fenced
instead). A global lives as long as Asterisk runs: after an Asterisk restart
calls use the fallback queue until the next beat (at most ``interval`` after the
service reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from switchboard.ami.client import AmiError

log = logging.getLogger("switchboard.heartbeat")

#: The global variable the dialplan reads (not SB_*: the AMI event filter drops its VarSet).
VARIABLE = "SWITCHBOARD_HEARTBEAT"


def put_action(epoch: int, leader_epoch: int = 0) -> dict[str, str]:
    """The AMI action that writes a beat (an empty value: no beat, calls go to the fallback).

    ``epoch`` is the Unix time of the beat; ``leader_epoch`` (active/standby) the epoch of
    the instance that leads, written after a colon."""
    value = (f"{epoch}:{leader_epoch}" if leader_epoch else str(epoch)) if epoch else ""
    return {"Action": "Setvar", "Variable": VARIABLE, "Value": value}


def parse_beat(value: str) -> tuple[int, int]:
    """(unix time, leader epoch) of a beat's value; (0, 0) for none, epoch 0 when it carries none."""
    head, _, tail = (value or "").strip().partition(":")
    beat = int(head) if head.isdigit() else 0
    return beat, (int(tail) if tail.isdigit() else 0)


def get_action() -> dict[str, str]:
    return {"Action": "Getvar", "Variable": VARIABLE}


class Heartbeat:
    name = "heartbeat"

    def __init__(self, ami: Any, *, interval: float = 3.0, leader_epoch: Any = None,
                 check: Callable[[], Awaitable[bool]] | None = None, clear_on_stop: bool = True) -> None:
        self.ami = ami
        self.check = check                 # active/standby: read before each write, False = not ours to write
        self.interval = interval
        self.leader_epoch = leader_epoch   # () -> the leader epoch to carry (active/standby), or None
        self.clear_on_stop = clear_on_stop
        self.last_ok: float | None = None
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Started and beating (the leader's part; never on a standby)."""
        return self._task is not None and not self._task.done()

    async def beat(self) -> bool:
        if self.check is not None and not await self.check():
            return False
        try:
            epoch = int(self.leader_epoch()) if self.leader_epoch is not None else 0
            resp = await self.ami.send(put_action(int(time.time()), epoch), timeout=max(1.0, self.interval))
        except (AmiError, TimeoutError) as exc:
            self.failures += 1
            log.debug("heartbeat not written: %s", exc)
            return False
        if not resp.success:
            self.failures += 1
            log.warning("heartbeat refused: %s", resp.message)
            return False
        self.last_ok = time.time()
        return True

    async def _run(self) -> None:
        while True:
            if getattr(self.ami, "connected", True):
                await self.beat()
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # A deliberate stop hands new calls to the fallback queue at once
        # (a crash leaves the beat to go stale within HEARTBEAT_MAX_AGE). With a standby the
        # beat is left as it is: the standby takes over within a second and renews it.
        if not self.clear_on_stop:
            return
        with contextlib.suppress(AmiError, TimeoutError):
            await self.ami.send(put_action(0), timeout=2)
