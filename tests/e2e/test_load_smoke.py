"""Load smoke test: about 30 concurrent SIPp callers on mixed paths for about a minute against
the service as a process (as `make run` starts it), with ten agents answered by one SIPp farm.

Correctness under concurrency, not timing: every call SIPp placed completed, every caller has
exactly one closed record with the outcome its path implies and a timeline with one start and
one end, no channel is left on Asterisk, and the service logged no traceback. The capacity
figures come from `make bench-load` (bench/load.py), not from here."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import asyncpg
import pytest
from e2e_metrics_service import create_token
from e2e_process import ServiceProcess, api_ready, run_cli, service_config, set_routing
from e2e_service import HOTLINE, agents_secret, demo_agents, free_port, hang_up_leftovers, sip_remote, until
from e2e_stack import ami_settings

from switchboard.acd.agents import sip_password
from switchboard.ami.client import AmiClient
from switchboard.demo.load import (
    AgentFarm,
    RecordCheck,
    caller_numbers,
    caller_paths,
    check_records,
    run_callers,
)

pytestmark = pytest.mark.e2e

#: Agents that hold the topic of the "hangs up while waiting" path (unemployment / job support)
#: stay out of the run, so those callers are never answered.
JOB_SUPPORT = "unemployment.job_support"

#: (path, calls per second, calls): about 30 calls up at once for about a minute.
PLAN = (("self_service", 0.25, 15), ("agent", 0.5, 30), ("hangup_menu", 0.5, 30), ("hangup_queue", 0.5, 30))


@pytest.mark.timeout(600)
async def test_thirty_concurrent_callers_for_a_minute_leave_exact_records(
        stack_env: dict[str, str], pg_dsn: str, tmp_path: Path) -> None:
    config, http_port = await service_config(stack_env, pg_dsn, tmp_path)
    # widen to the region and the nation quickly (callers come from provinces without agents);
    # every agent starts logged out (the test logs its own in; the database is shared)
    set_routing(config, region_after_s=5.0, nation_after_s=10.0, restore_agent_states_h=0.0)
    await run_cli(config, "migrate", "--seed-demo")        # the participant the self-service callers look up
    agents = [a for a in demo_agents() if a.active and JOB_SUPPORT not in a.skills]
    assert len(agents) >= 8
    secret = agents_secret(stack_env)
    remote = sip_remote(stack_env)
    farm = AgentFarm([(a.sip_endpoint, sip_password(secret, a.sip_endpoint)) for a in agents], remote=remote,
                     port=free_port(socket.SOCK_DGRAM), workdir=tmp_path, answer_after=1.0, talk=5.0)
    service = ServiceProcess(config, tmp_path / "service.log", http_port)
    paths = caller_paths()
    expected: dict[str, str] = {}
    plan = []
    for i, (name, rate, calls) in enumerate(PLAN):
        numbers = caller_numbers(i + 1, calls, run=1)
        expected.update(dict.fromkeys(numbers, paths[name].outcome))
        plan.append((paths[name], rate, numbers))
    await service.start()
    try:
        tokens = {a.id: await create_token(pg_dsn, role="agent", agent=a, name="load-smoke") for a in agents}
        await farm.start()
        await until(lambda: _all_registered(stack_env, [a.sip_endpoint for a in agents]), timeout=20,
                    what="every agent of the farm registered")
        for a in agents:
            await api_ready(http_port, tokens[a.id], a.id)
        runs = await asyncio.gather(*(
            run_callers(path, numbers, remote=remote, service=HOTLINE, rate=rate, limit=40,
                        workdir=tmp_path, timeout=300) for path, rate, numbers in plan))
        for run in runs:
            assert (run.returncode, run.created, run.failed) == (0, run.successful, 0), (
                f"{run.name}: SIPp rc {run.returncode}, {run.successful} ok / {run.failed} failed of "
                f"{run.created}\n{run.errors[-3000:]}")
        assert sum(r.successful for r in runs) == len(expected)

        conn = await asyncpg.connect(pg_dsn, timeout=10)
        try:
            check = RecordCheck()

            async def exact() -> bool:
                nonlocal check
                check = await check_records(conn, expected)
                return check.exact
            try:
                await until(exact, timeout=30, what="records of every call closed", interval=1.0)
            except AssertionError:
                pass
            assert check.exact, (check.as_dict(), check.missing[:5], check.duplicated[:5],
                                 check.wrong_outcome[:5], check.open_records[:5], check.event_faults[:5])
        finally:
            await conn.close()
        assert farm.proc is not None and farm.proc.returncode is None, f"agent farm died:\n{farm.errors[-2000:]}"
    finally:
        await farm.stop()
        await service.stop()
        left = await hang_up_leftovers(stack_env)
    assert left == 0, f"{left} channels were left on Asterisk after every caller was gone"
    log = (tmp_path / "service.log").read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]


async def _all_registered(env: dict[str, str], endpoints: list[str]) -> bool:
    client = AmiClient(ami_settings(env, admin=True))
    await client.start(timeout=10)
    try:
        listing = await client.send({"Action": "PJSIPShowContacts"}, timeout=10)
        reachable = {ev.get("Endpoint") for ev in getattr(listing, "events", ())
                     if ev.name == "ContactList" and ev.get("Status") in ("Reachable", "Unknown")}
        return set(endpoints) <= reachable
    finally:
        await client.close()
