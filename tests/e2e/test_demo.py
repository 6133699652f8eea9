"""`make run`'s demo traffic against the real stack: the service runs as a process, and
`switchboard demo` logs its SIPp agents in with *20 and places callers that get answered,
even at 01:30 in Vietnam (the demo setting ivr.demo_clock = "open" that `make run` sets)."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from e2e_process import ServiceProcess, cli, service_config
from e2e_service import REPO, hang_up_leftovers

from switchboard.ivr.calendar import vn_holiday

pytestmark = pytest.mark.e2e


def offset_to_night() -> float:
    """Seconds from now to the next 01:30 in Vietnam on a working day (ivr.clock_offset_s)."""
    ict = ZoneInfo("Asia/Ho_Chi_Minh")
    now = datetime.now(UTC)
    day = now.astimezone(ict).date() + timedelta(days=1)
    while day.weekday() >= 5 or vn_holiday(day):
        day += timedelta(days=1)
    return (datetime(day.year, day.month, day.day, 1, 30, tzinfo=ict) - now).total_seconds()


async def test_demo_agents_log_in_and_demo_callers_are_answered(stack_env: dict[str, str], pg_dsn: str,
                                                                tmp_path: Path) -> None:
    """The demo started at 01:30 ICT (hotline closed) with `make run`'s demo setting: its
    clock moves to the opening (said in the log and by doctor) and demo agents answer."""
    config, http_port = await service_config(stack_env, pg_dsn, tmp_path)
    text = config.read_text(encoding="utf-8")
    text = re.sub(r"clock_offset_s = .*", f"clock_offset_s = {offset_to_night():.0f}\ndemo_clock = \"open\"", text)
    config.write_text(text, encoding="utf-8")
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
        doctor = await asyncio.create_subprocess_exec(*cli(config, "doctor", "--timeout", "3"), env=env,
                                                      stdout=asyncio.subprocess.PIPE, cwd=str(REPO))
        report = (await asyncio.wait_for(doctor.communicate(), 60))[0].decode()
        clock_line = next(ln for ln in report.splitlines() if "IVR clock" in ln)
        assert "ivr.demo_clock=open: local time " in clock_line and " 07:30 " in clock_line, report
        assert re.search(r"[56]h[0-9]{2} ahead of the real clock", clock_line), report   # 01:30 -> 07:30
        log_text = (tmp_path / "service.log").read_text(errors="replace")
        assert "IVR clock: ivr.demo_clock=open" in log_text and "ahead of the real clock" in log_text
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
