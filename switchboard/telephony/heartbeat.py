"""The service's heartbeat: an Asterisk global variable.

Every ``interval`` seconds the service writes the current epoch into the global
``SWITCHBOARD_HEARTBEAT`` (AMI ``Setvar`` without a channel: the ``call`` write
class). The hotline dialplan compares ``${GLOBAL(SWITCHBOARD_HEARTBEAT)}`` with
``${EPOCH}``: when it is empty or older than ``HEARTBEAT_MAX_AGE`` (the service
is down, hung or restarting) new calls go to the plain fallback queue instead
of AsyncAGI.

Not AstDB: ``DBPut`` needs the AMI ``system`` class, and ``Setvar`` of ``DB()``
is refused on an AMI connection (DB is a dangerous function, AMI threads inhibit
escalations). A global lives as long as Asterisk runs: after an Asterisk restart
calls use the fallback queue until the next beat (at most ``interval`` after the
service reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from switchboard.ami.client import AmiError

log = logging.getLogger("switchboard.heartbeat")

#: The global variable the dialplan reads (not SB_*: the AMI event filter drops its VarSet).
VARIABLE = "SWITCHBOARD_HEARTBEAT"


def put_action(epoch: int) -> dict[str, str]:
    """The AMI action that writes a beat (an empty value: no beat, calls go to the fallback)."""
    return {"Action": "Setvar", "Variable": VARIABLE, "Value": str(epoch) if epoch else ""}


def get_action() -> dict[str, str]:
    return {"Action": "Getvar", "Variable": VARIABLE}


class Heartbeat:
    name = "heartbeat"

    def __init__(self, ami: Any, *, interval: float = 3.0) -> None:
        self.ami = ami
        self.interval = interval
        self.last_ok: float | None = None
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> bool:
        try:
            resp = await self.ami.send(put_action(int(time.time())), timeout=max(1.0, self.interval))
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
        # (a crash leaves the beat to go stale within HEARTBEAT_MAX_AGE).
        with contextlib.suppress(AmiError, TimeoutError):
            await self.ami.send(put_action(0), timeout=2)
