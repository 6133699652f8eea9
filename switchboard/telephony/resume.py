"""Taking a caller over where the previous owner left it (a standby that takes the lead,
or the service restarted): the flow's memo on the channel, the answer to a ``GET DATA``
still running when the owner stopped, and whether the call's record was ever started.

* :class:`MemoKeeper` writes the IVR runner's memo (``ivr/memo.py``) into the channel
  variable ``SB_IVR`` (AMI ``Setvar`` on the channel; the ``call`` write class).
* :func:`answer_in_flight` waits for what the previous owner left running on the channel
  to finish (an AGI ``NOOP`` queues behind it) and returns the caller's answer when that
  was the ``GET DATA`` of the node the flow resumes at.
* :class:`StartedCheck` asks the database whether the call's ``call.started`` is stored
  (None when it cannot tell).
"""

from __future__ import annotations

import logging
from typing import Any

from switchboard.ivr import memo
from switchboard.store.leader import calls_started

log = logging.getLogger("switchboard.entry")


class MemoKeeper:
    def __init__(self, ami: Any, *, timeout: float = 2.0) -> None:
        self.ami = ami
        self.timeout = timeout

    async def __call__(self, session: Any, value: str) -> None:
        await self.ami.send({"Action": "Setvar", "Channel": session.channel, "Variable": memo.VARIABLE,
                             "Value": value}, timeout=self.timeout)


async def answer_in_flight(session: Any, node: str, *, timeout: float = 120.0) -> str | None:
    """The digits the caller gave the previous owner's ``GET DATA`` at ``node`` ("" for a
    timeout), None when no such command finished on the channel."""
    await session.execute("NOOP", timeout=timeout)   # runs once what was running has finished
    wanted = f"-getdata-{node}"
    for command_id, result in reversed(getattr(session, "orphans", ())):
        if command_id.endswith(wanted):
            if result.result == "-1":
                return None
            return str(result.result)
    return None


class StartedCheck:
    """``await check(call_id)``: is the call's ``call.started`` stored? None when unknown."""

    def __init__(self, pool: Any, *, timeout: float = 2.0) -> None:
        self.pool = pool
        self.timeout = timeout

    async def __call__(self, call_id: str) -> bool | None:
        try:
            async with self.pool.acquire(timeout=self.timeout) as conn:
                return call_id in await calls_started(conn, [call_id], timeout=self.timeout)
        except Exception as exc:
            log.warning("call %s: cannot tell whether its record was started: %r", call_id, exc)
            return None
