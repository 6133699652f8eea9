from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from switchboard.store.agents import (
    AgentRecord,
    AgentStateChange,
    last_agent_states,
    load_agents,
    log_agent_states,
    upsert_agent,
)


async def test_agents_roundtrip_and_state_log(db: asyncpg.Connection) -> None:
    a = AgentRecord(id="a1", name="Nguyễn Thị Mai", sip_endpoint="PJSIP/agent1",
                    skills={"social/pension": 5, "health/card": 2}, home_province="Hà Nội", languages=("vi", "en"))
    await upsert_agent(db, a)
    await upsert_agent(db, AgentRecord(id="a2", name="Lê Văn Tâm", sip_endpoint="PJSIP/agent2", skills={},
                                             home_province=None, languages=("vi",), active=False))
    assert await load_agents(db) == [a]
    changed = AgentRecord(id="a1", name="Nguyễn Thị Mai", sip_endpoint="PJSIP/agent9",
                          skills={"social/pension": 4}, home_province="Huế", languages=("vi",))
    await upsert_agent(db, changed)
    assert [x.id for x in await load_agents(db, active_only=False)] == ["a1", "a2"]
    assert (await load_agents(db))[0] == changed
    with pytest.raises(ValueError):
        await upsert_agent(db, AgentRecord(id="a3", name="x", sip_endpoint="PJSIP/x", home_province=None, skills={"s": 6}))
    t = datetime(2026, 3, 2, 1, tzinfo=UTC)
    n = await log_agent_states(db, [AgentStateChange("a1", t, "ready", None, "login"),
                                    AgentStateChange("a1", t, "paused", "ready", "no-answer", None, 42.5)])
    assert n == 2
    rows = await db.fetch("SELECT to_state, reason, duration_s FROM agent_state_log ORDER BY id", timeout=10)
    assert [tuple(r) for r in rows] == [("ready", "login", None), ("paused", "no-answer", 42.5)]


async def test_last_agent_states_are_the_latest_row_per_agent_since(db: asyncpg.Connection) -> None:
    t = datetime(2026, 3, 2, 1, tzinfo=UTC)
    await log_agent_states(db, [
        AgentStateChange("a1", t, "ready", "logged_out"),
        AgentStateChange("a1", t + timedelta(minutes=5), "paused", "ready", "lunch"),
        AgentStateChange("a2", t, "ready", "logged_out"),
        AgentStateChange("a2", t + timedelta(minutes=1), "offered", "ready"),
        AgentStateChange("a2", t + timedelta(minutes=1), "on_call", "offered"),   # same instant: the later row
        AgentStateChange("a3", t - timedelta(hours=20), "ready", "logged_out"),   # too old
        AgentStateChange("a4", t, "ready", "logged_out"),
        AgentStateChange("a4", t + timedelta(minutes=9), "logged_out", "ready"),
    ])
    last = await last_agent_states(db, since=t - timedelta(hours=12))
    assert last == {"a1": ("paused", "lunch"), "a2": ("on_call", None), "a4": ("logged_out", None)}
