"""Agents and their state log in PostgreSQL (for the ACD and the API)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from switchboard.acd.agents import AgentRecord  # one agent type for the ACD, the store and the CLI


@dataclass(frozen=True, slots=True)
class AgentStateChange:
    agent_id: str
    at: datetime
    to_state: str
    from_state: str | None = None
    reason: str | None = None
    call_id: str | None = None
    duration_s: float | None = None   # time spent in from_state


def _check_skills(skills: Mapping[str, int]) -> None:
    for skill, level in skills.items():
        if not isinstance(level, int) or not 1 <= level <= 5:
            raise ValueError(f"proficiency of {skill!r} must be 1..5, got {level!r}")


_UPSERT = """
    INSERT INTO agents (id, name, sip_endpoint, skills, home_province, languages, active)
    VALUES ($1, $2, $3, $4::jsonb, $5, $6::text[], $7)
    ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, sip_endpoint = EXCLUDED.sip_endpoint,
        skills = EXCLUDED.skills, home_province = EXCLUDED.home_province,
        languages = EXCLUDED.languages, active = EXCLUDED.active
"""


def _row(agent: AgentRecord) -> tuple[object, ...]:
    _check_skills(agent.skills)
    return (agent.id, agent.name, agent.sip_endpoint, json.dumps(dict(agent.skills), ensure_ascii=False),
            agent.home_province, list(agent.languages), agent.active)


async def upsert_agent(conn: asyncpg.Connection, agent: AgentRecord, *, timeout: float = 10.0) -> None:
    await conn.execute(_UPSERT, *_row(agent), timeout=timeout)


async def import_agents(conn: asyncpg.Connection, records: Iterable[AgentRecord], *,
                        deactivate_missing: bool = False, timeout: float = 10.0) -> dict[str, int]:
    """Upsert ``records`` in one transaction (and, with ``deactivate_missing``, mark every
    other active agent inactive). Returns the counts inserted, updated and deactivated."""
    records = list(records)
    rows = [_row(r) for r in records]
    async with conn.transaction():
        existing = {r["id"] for r in await conn.fetch("SELECT id FROM agents", timeout=timeout)}
        await conn.executemany(_UPSERT, rows, timeout=timeout)
        deactivated = 0
        if deactivate_missing:
            status = await conn.execute(
                "UPDATE agents SET active = false WHERE active AND NOT (id = ANY($1::text[]))",
                [r.id for r in records], timeout=timeout)
            deactivated = int(status.split()[-1])
    ids = {r.id for r in records}
    return {"inserted": len(ids - existing), "updated": len(ids & existing), "deactivated": deactivated}


async def count_active_agents(conn: asyncpg.Connection, *, timeout: float = 10.0) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM agents WHERE active", timeout=timeout))


async def load_agents(conn: asyncpg.Connection, *, active_only: bool = True,
                      timeout: float = 10.0) -> list[AgentRecord]:
    rows = await conn.fetch(
        "SELECT id, name, sip_endpoint, skills::text AS skills, home_province, languages, active "
        "FROM agents WHERE active OR NOT $1 ORDER BY id", active_only, timeout=timeout)
    return [
        AgentRecord(id=r["id"], name=r["name"], sip_endpoint=r["sip_endpoint"], skills=json.loads(r["skills"]),
                    home_province=r["home_province"], languages=tuple(r["languages"]), active=r["active"])
        for r in rows
    ]


async def last_agent_states(conn: asyncpg.Connection, *, since: datetime,
                            timeout: float = 10.0) -> dict[str, tuple[str, str | None]]:
    """Each agent's last logged state (and pause reason) at or after ``since``."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (agent_id) agent_id, to_state, reason FROM agent_state_log WHERE at >= $1 "
        "ORDER BY agent_id, at DESC, id DESC", since, timeout=timeout)
    return {r["agent_id"]: (r["to_state"], r["reason"]) for r in rows}


async def log_agent_states(conn: asyncpg.Connection, changes: Iterable[AgentStateChange], *,
                           timeout: float = 10.0) -> int:
    rows = [(c.agent_id, c.at, c.from_state, c.to_state, c.reason, c.call_id, c.duration_s) for c in changes]
    if rows:
        await conn.executemany(
            "INSERT INTO agent_state_log (agent_id, at, from_state, to_state, reason, call_id, duration_s) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)", rows, timeout=timeout)
    return len(rows)
