"""A call taken over after a service restart can still be passed on (issue 16): the service
runs as a real subprocess (``switchboard run``); an agent talks to a caller, the service is
restarted (SIGTERM, then a new process), and the agent transfers the call to a topic from the
API. The new process rebuilt the caller's place in line from the SB_* channel variables, so
the caller goes back into the line with its first join time and priority and is served; the
records are read back from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from e2e_process import api_ready
from e2e_service import PENSION, hang_up_leftovers, run_caller, sip_remote, until
from test_acd_readoption import events_of, has_kind, ivr, process_and_phones, start_with_one_agent_ready

from switchboard.demo.sipp import HangUp, Pause, SippResult, caller_scenario

pytestmark = pytest.mark.e2e


async def api_post(port: int, token: str, path: str, body: dict[str, str]) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as s, s.post(
            f"http://127.0.0.1:{port}{path}", json=body, headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=10)) as r:
        return r.status, await r.json()


async def test_a_call_taken_over_after_a_restart_is_transferred_to_a_topic(
        stack_env: dict[str, str], pg_dsn: str, tmp_path: Path) -> None:
    http_port, tokens, service, phones = await process_and_phones(stack_env, pg_dsn, tmp_path)
    caller = "02838300091"
    call: asyncio.Task[SippResult] | None = None
    try:
        await start_with_one_agent_ready(http_port, tokens, service, phones)
        call = asyncio.create_task(run_caller(caller_scenario([*ivr(PENSION), Pause(80), HangUp()], caller=caller),
                                              remote=sip_remote(stack_env), service="19009068", timeout=150))
        await until(lambda: has_kind(pg_dsn, caller, "call.answered"), timeout=30, what="the call answered")
        await asyncio.sleep(1.0)   # the SB_* variables are set right after queue.joined

        await service.stop()       # a restart: the new process knows nothing but what Asterisk kept
        assert not call.done(), "the caller lost its call with the service"
        await service.start()
        before = await events_of(pg_dsn, caller)
        first_join = next(e for e in before if e["kind"] == "queue.joined")
        await api_ready(http_port, tokens["agent1010"], "agent1010")    # health.benefit 5
        status, body = await api_post(http_port, tokens["agent1009"], "/api/agents/agent1009/transfer",
                                      {"kind": "topic", "target": "health.benefit"})
        assert status == 202, body
        assert body["state"] == "requested" and body["call_id"] == first_join["call_id"]
        await until(lambda: has_kind(pg_dsn, caller, "transfer.completed"), timeout=40,
                    what="the transferred caller served")
        after = [e for e in await events_of(pg_dsn, caller) if e["seq"] > max(x["seq"] for x in before)]
        kinds = [e["kind"] for e in after]
        assert kinds.index("transfer.requested") < kinds.index("queue.joined") < kinds.index("call.answered") \
            < kinds.index("transfer.completed"), kinds
        rejoined = json.loads(after[kinds.index("queue.joined")]["data"])
        # its place as the first process left it on the channel: same province and priority, new topic
        first = json.loads(first_join["data"])
        assert (rejoined["topic"], rejoined["province"], rejoined["priority"], rejoined["province_source"]) == \
            ("health.benefit", first["province"], first["priority"], "transfer")
        answered_ev = after[kinds.index("call.answered")]
        answered = json.loads(answered_ev["data"])
        assert answered["agent_id"] == "agent1010"
        # it kept its first join time: its wait counts from there (before the restart), not from its
        # second join (the answer's time less the first join's, within the clocks' rounding)
        conn = await asyncpg.connect(pg_dsn, timeout=10)
        try:
            ts = {r["seq"]: r["ts"] for r in await conn.fetch(
                "SELECT seq, ts FROM call_events WHERE call_id = $1", first_join["call_id"], timeout=5)}
        finally:
            await conn.close()
        since_first = (ts[answered_ev["seq"]] - ts[first_join["seq"]]).total_seconds()
        since_second = (ts[answered_ev["seq"]] - ts[after[kinds.index("queue.joined")]["seq"]]).total_seconds()
        assert abs(answered["wait_s"] - since_first) < 2.0 and answered["wait_s"] > since_second + 5, \
            (answered, since_first, since_second)
        done = json.loads(after[kinds.index("transfer.completed")]["data"])
        assert (done["kind"], done["from_agent"], done["to_agent"], done["fell_back"]) == \
            ("topic", "agent1009", "agent1010", False)
        assert (await call).ok
        await until(lambda: has_kind(pg_dsn, caller, "call.ended"), timeout=20, what="the call closed")
        timeline = await events_of(pg_dsn, caller)
        ended = [json.loads(e["data"]) for e in timeline if e["kind"] == "agent.ended"]
        assert {e["agent_id"] for e in ended} == {"agent1009", "agent1010"}   # each agent's talk time its own
        assert not [e for e in timeline if e["kind"] == "transfer.refused"]
        conn = await asyncpg.connect(pg_dsn, timeout=10)
        try:
            row = await conn.fetchrow("SELECT outcome, agent_id, topic, transfers FROM calls WHERE call_id = $1",
                                      first_join["call_id"], timeout=5)
        finally:
            await conn.close()
        assert row is not None
        assert (row["outcome"], row["agent_id"], row["topic"], row["transfers"]) == \
            ("answered", "agent1010", "health.benefit", 1)
    finally:
        if call is not None:
            call.cancel()
            await asyncio.gather(call, return_exceptions=True)
        await service.stop()
        for p in phones:
            await p.stop()
        await hang_up_leftovers(stack_env)
