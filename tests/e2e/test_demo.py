"""`make run`'s demo traffic against the real stack: the service runs as a process, and
`switchboard demo` logs its SIPp agents in with *20 and places callers that get answered."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest
from e2e_process import ServiceProcess, cli, service_config
from e2e_service import REPO, hang_up_leftovers

pytestmark = pytest.mark.e2e


async def test_demo_agents_log_in_and_demo_callers_are_answered(stack_env: dict[str, str], pg_dsn: str,
                                                                tmp_path: Path) -> None:
    config, http_port = await service_config(stack_env, pg_dsn, tmp_path)
    env_file = tmp_path / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in stack_env.items()))
    conn = await asyncpg.connect(pg_dsn, timeout=10)
    try:
        since = await conn.fetchval("SELECT now()")
    finally:
        await conn.close()
    service = ServiceProcess(config, tmp_path / "service.log", http_port)
    await service.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        proc = await asyncio.create_subprocess_exec(
            *cli(config, "demo", "--stack-env", str(env_file), "--agents", "3", "--every", "5", "--seed", "3",
                 "--duration", "60"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=str(REPO))
        out, _ = await asyncio.wait_for(proc.communicate(), 150)
        text = out.decode()
        assert proc.returncode == 0, text
        summary = text.strip().splitlines()[-1]
        assert summary.startswith("demo: ") and "3 of 3 agents ready" in summary, text[-2000:]
    finally:
        await service.stop()
        await hang_up_leftovers(stack_env)
    conn = await asyncpg.connect(pg_dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT outcome, agent_id FROM calls WHERE started_at >= $1", since)
        logins = await conn.fetch("SELECT DISTINCT agent_id FROM agent_state_log WHERE at >= $1 AND to_state = "
                                  "'ready'", since)
    finally:
        await conn.close()
    assert len(rows) >= 5, rows                                            # a caller every ~5 s for 60 s
    answered = [r for r in rows if r["outcome"] == "answered"]
    assert answered and {r["agent_id"] for r in answered} <= {"agent1001", "agent1002", "agent1003"}, rows
    # (agents of earlier tests may be restored to their last state too; their phones are gone)
    assert {r["agent_id"] for r in logins} >= {"agent1001", "agent1002", "agent1003"}
