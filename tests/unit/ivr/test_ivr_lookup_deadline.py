"""The flow's lookup node with the real CRM look-up whose database stalls: the on_error path is taken."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fake_agi import FakeAgi

from switchboard.config import DatabaseSettings
from switchboard.events import EventKind
from switchboard.ivr.registry import FlowRegistry
from switchboard.ivr.runner import IvrRunner
from switchboard.store.participants import ParticipantLookup

REPO = Path(__file__).resolve().parents[3]


class StalledPool:
    """A pool whose one connection's query never returns (a database that stopped answering)."""

    def __init__(self) -> None:
        self.queries = 0

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[StalledPool]:
        yield self

    async def fetchrow(self, sql: str, value: str) -> None:
        self.queries += 1
        await asyncio.sleep(3600)


async def test_the_flow_takes_its_on_error_path_when_the_lookup_times_out() -> None:
    registry = FlowRegistry(REPO / "ivr_flows", None)
    assert registry.reload().ok
    pool = StalledPool()
    lookup = ParticipantLookup(dataclasses.replace(DatabaseSettings(), lookup_timeout_s=0.2),
                               province_id=lambda name: None, connect=lambda *a, **kw: pool)
    await lookup.start()
    events: list[tuple[EventKind, dict[str, Any]]] = []
    enqueued: list[Any] = []

    async def on_enqueue(session: Any, request: Any) -> str:
        enqueued.append(request)
        return "served"

    runner = IvrRunner(registry, emit=lambda kind, data: events.append((kind, data)), on_enqueue=on_enqueue,
                       lookup=lookup, lookup_timeout=5.0,    # the look-up's own 0.2 s deadline comes first
                       clock=lambda: datetime(2026, 3, 3, 3, 0, tzinfo=UTC))   # Tuesday 10:00: open
    await runner.run(FakeAgi(caller="02439998888", keys=["1", "4", "0100000001", "HANGUP"]))
    assert pool.queries == 1 and lookup.failures == 1
    assert [d for k, d in events if k is EventKind.IVR_LOOKUP] == [
        {"by": "si_code", "found": False, "participant_id": None, "error": True}]
    nodes = [d["node"] for k, d in events if k is EventKind.IVR_STEP]
    assert "lookup_unavailable" in nodes and "si_not_found" not in nodes
    assert [e.topic for e in enqueued] == ["social.contribution"]       # put through to an agent
