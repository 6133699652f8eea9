"""Owed callbacks from PostgreSQL back into the ACD's line, as a part: at start (a restart
of the service loses none) and every ``interval`` (callbacks asked after hours join the line).

It reads through ``store/callbacks.py``, seeds the number policy's daily cap with what the
database holds for today, and hands the callbacks to the ACD; it dials nothing itself.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from switchboard.calls import adopted_seq_base
from switchboard.periodic import Periodic
from switchboard.store.callbacks import callbacks_granted, open_callbacks
from switchboard.store.pool import PoolPart, read_or_log

# The lines keep the logger they had in the composition root.
log = logging.getLogger("switchboard.app")


class CallbackSweep(Periodic):
    """Owed callbacks from the database into the ACD's line: at start (so a restart of the
    service loses none) and every ``interval`` (callbacks asked after hours join the line)."""

    name = "callbacks"

    def __init__(self, acd: Any, pool_part: PoolPart, bus: Any, *, sweep_s: float, max_age_s: float) -> None:
        super().__init__()
        self.acd = acd
        self.pool_part = pool_part
        self.bus = bus
        self.interval = sweep_s
        self.max_age_s = max_age_s

    async def sweep(self) -> list[str]:
        """Restore what is owed; the call ids put back in line."""
        now = datetime.now(UTC)
        since = now - timedelta(seconds=2 * self.max_age_s)  # older ones: expired long ago
        cap = self.acd.numbers.cap
        day_start = datetime.fromisoformat(cap.day_of(now)).replace(tzinfo=cap.tz)

        async def read(conn: asyncpg.Connection) -> tuple[Any, dict[str, int]]:
            owed = await open_callbacks(conn, since=since, timeout=10)
            granted = await callbacks_granted(conn, since=day_start, timeout=10)
            return owed, granted

        # the database is away: the next sweep tries again
        found = await read_or_log(self.pool_part.pool, read, log=log, level=logging.WARNING,
                                  failed="owed callbacks not read from the database: %s")
        if found is None:
            return []
        owed, granted = found
        # the daily cap counts what the database holds for today: a restart does not reset it
        counts: dict[str, int] = {}
        for raw, n in granted.items():
            number = self.acd.numbers.policy.check(raw).number
            if number:
                counts[number] = counts.get(number, 0) + n
        cap.seed(counts, now)
        base = adopted_seq_base()
        for cb in owed:  # events of a call the previous process numbered continue above its numbers
            if not self.bus.knows(cb.call_id):
                self.bus.seed(cb.call_id, base)
        return list(self.acd.restore_callbacks(owed, max_age_s=self.max_age_s))

    async def once(self) -> None:
        restored = await self.sweep()
        if restored:
            log.info("%d owed callback(s) back in line", len(restored))
