"""The agents from PostgreSQL into the ACD, as a part: at start and every minute, and at
the first load the states agents had before a restart.

It reads through ``store/agents.py`` and hands the rows to the ACD; it makes no routing
decision and writes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from switchboard.periodic import Periodic
from switchboard.store.agents import last_agent_states, load_agents
from switchboard.store.pool import PoolPart, read_or_log

# The lines keep the logger they had in the composition root.
log = logging.getLogger("switchboard.app")


class AgentLoader(Periodic):
    """Loads the agents from PostgreSQL into the ACD at start and every minute."""

    name = "agents"

    def __init__(self, acd: Any, pool_part: PoolPart, fixed: Any, *, restore_states_h: float = 0.0,
                 restore_at_start: bool = True) -> None:
        super().__init__()
        self.restore_at_start = restore_at_start   # False: a standby restores when it takes the lead
        self.acd = acd
        self.pool_part = pool_part
        self.fixed = fixed
        self.restore_states_h = restore_states_h
        self.loaded: int | None = None

    async def load(self) -> int:
        if self.fixed is not None:
            self.acd.set_agents(self.fixed)
            return len(self.fixed)
        records = await read_or_log(self.pool_part.pool, lambda conn: load_agents(conn, timeout=5),
                                    log=log, level=logging.ERROR, failed="cannot load agents from the database: %s")
        if records is None:
            return 0
        self.acd.set_agents(records)
        return len(records)

    async def once(self) -> None:
        n = await self.load()
        if self.loaded is None:
            log.info("%d agents loaded", n)
            if self.restore_states_h > 0 and self.restore_at_start:
                await self.restore_states()
        self.loaded = n

    async def restore_states(self) -> list[str]:
        """Agents take back their last logged state (the service restarted under them)."""
        if self.restore_states_h <= 0:
            return []
        since = datetime.now(UTC) - timedelta(hours=self.restore_states_h)
        last = await read_or_log(self.pool_part.pool, lambda conn: last_agent_states(conn, since=since, timeout=5),
                                 log=log, level=logging.ERROR,
                                 failed="agent states not restored (agents log in again): %s")
        if last is None:
            return []
        return list(self.acd.restore_states(last))
