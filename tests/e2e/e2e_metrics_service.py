"""Helpers for tests that look at the running service from outside: HTTP
requests, Prometheus scrapes read back into numbers, ``promtool check
metrics``, and API tokens stored in the service's PostgreSQL.

The service itself comes from :mod:`e2e_service` (``running_service``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from switchboard.acd.agents import AgentRecord
from switchboard.api import auth
from switchboard.api.pg_tokens import PgTokenStore
from switchboard.store import agents as store_agents

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Reply:
    status: int
    text: str


async def http_get(url: str, *, token: str | None = None, timeout: float = 5.0) -> Reply:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
            session.get(url, headers=headers) as resp:
        return Reply(resp.status, await resp.text())


@dataclass(frozen=True)
class Scrape:
    """One /metrics scrape: the raw text and every sample by (name, labels)."""

    text: str
    samples: Mapping[tuple[str, Labels], float]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples: dict[tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] = float(s.value)
        return cls(text, samples)

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def has(self, name: str, **labels: str) -> bool:
        want = set(labels.items())
        return any(n == name and want <= ls for (n, ls) in self.samples)


async def scrape(base_url: str) -> Scrape:
    reply = await http_get(f"{base_url}/metrics")
    assert reply.status == 200, reply
    return Scrape.parse(reply.text)


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` (Debian's prometheus package) on an exposition text."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus"
    return subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=30, check=False)


async def create_token(dsn: str, *, role: str, agent: AgentRecord | None = None, name: str = "e2e") -> str:
    """A token in the service's database (the agent row is upserted first: tokens reference it)."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        if agent is not None:
            await store_agents.upsert_agent(conn, agent, timeout=10)
        token, _ = await auth.create_token(PgTokenStore(conn), role=role,
                                           agent_id=agent.id if agent else None, name=name)
        return token
    finally:
        await conn.close(timeout=5)
