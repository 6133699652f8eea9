"""kill -9 of the service (issue 5, "Fallback"): the service runs as a real
subprocess (``switchboard run`` with a TOML config). With one bridged call and
one caller waiting, SIGKILL: the bridged call stays up (Asterisk holds it), a
new call while the heartbeat is stale goes to the dialplan's fallback queue,
and a restarted service re-adopts the waiting caller from its SB_* channel
variables and gets it an agent; its record continues above the old seqs.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from e2e_process import ServiceProcess, api_ready, run_cli, service_config
from e2e_service import (
    agents_secret,
    free_port,
    hang_up_leftovers,
    run_caller,
    sip_remote,
    until,
)

from switchboard.acd.agents import sip_password
from switchboard.ami.client import AmiClient, ListResponse
from switchboard.calls import adopted_seq_base
from switchboard.demo.sipp import Dtmf, HangUp, Pause, SippAgent, SippResult, caller_scenario
from switchboard.telephony import heartbeat

pytestmark = pytest.mark.e2e

HEALTH_CARD = "121"


def ivr(keys: str) -> list[Pause | Dtmf]:
    steps: list[Pause | Dtmf] = []
    for k in keys:
        steps += [Pause(2.5), Dtmf(k)]
    return steps


async def events_of(dsn: str, caller: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await conn.fetch(
            "SELECT e.call_id, e.seq, e.kind, e.data FROM call_events e WHERE e.call_id IN "
            "(SELECT call_id FROM call_events WHERE kind = 'call.started' AND data->>'caller' = $1) "
            "ORDER BY e.seq", caller, timeout=5))
    finally:
        await conn.close()


async def has_kind(dsn: str, caller: str, kind: str) -> bool:
    return any(e["kind"] == kind for e in await events_of(dsn, caller))



async def test_kill_9_bridged_call_stays_fallback_queue_and_readoption(
        stack_env: dict[str, str], pg_dsn: str, ami: AmiClient, tmp_path: Path) -> None:
    http_port, tokens, service, phones = await process_and_phones(stack_env, pg_dsn, tmp_path)
    callers: list[asyncio.Task[SippResult]] = []

    def call(steps: list[object], caller: str) -> asyncio.Task[SippResult]:
        task = asyncio.create_task(run_caller(caller_scenario(steps, caller=caller),  # type: ignore[arg-type]
                                              remote=sip_remote(stack_env), service="19009068", timeout=150))
        callers.append(task)
        return task

    try:
        await start_with_one_agent_ready(http_port, tokens, service, phones)
        talker, waiter, late = "02838300001", "02838300002", "02838300003"
        bridged = call([*ivr(HEALTH_CARD), Pause(75), HangUp()], talker)
        await until(lambda: has_kind(pg_dsn, talker, "call.answered"), timeout=30, what="the first call answered")
        call([*ivr(HEALTH_CARD), Pause(60), HangUp()], waiter)
        await until(lambda: has_kind(pg_dsn, waiter, "queue.joined"), timeout=30, what="the second caller waiting")
        await asyncio.sleep(1.0)   # the SB_* variables are set right after queue.joined
        before = await events_of(pg_dsn, waiter)
        old_max = max(e["seq"] for e in before)

        service.kill9()
        killed_at = time.monotonic()
        # Asterisk keeps the bridged call: still up well after the kill
        await asyncio.sleep(5)
        assert not bridged.done(), "the bridged caller lost its call"
        channels = await ami.send({"Action": "CoreShowChannels"}, timeout=5)
        assert isinstance(channels, ListResponse)
        by_caller = {ev.get("CallerIDNum"): ev for ev in channels.events if ev.name == "CoreShowChannel"}
        assert by_caller[talker].get("BridgeId"), by_caller[talker]
        assert any((ev.get("Channel") or "").startswith("PJSIP/agent1009") and ev.get("BridgeId")
                   == by_caller[talker].get("BridgeId") for ev in channels.events)

        # once the heartbeat is stale, a new call goes to the fallback queue
        async def stale() -> bool:
            resp = await ami.send(heartbeat.get_action(), timeout=5)
            val = resp.headers.get("Value") or ""
            return not val or time.time() - int(val) > 15 + 1

        await until(stale, timeout=25, what="heartbeat stale")
        fallback = call([Pause(8), HangUp()], late)

        async def in_fallback() -> bool:
            status = await ami.send({"Action": "QueueStatus", "Queue": "hotline-fallback"}, timeout=5)
            return late in [ev.get("CallerIDNum") for ev in getattr(status, "events", ()) if ev.name == "QueueEntry"]

        await until(in_fallback, timeout=8, what="the new call in the fallback queue")
        assert (await fallback).ok

        # restart: the waiting caller (still in AGI, music on hold) is re-adopted and gets the free agent
        channels = await ami.send({"Action": "CoreShowChannels"}, timeout=5)
        in_agi = [(ev.get("CallerIDNum"), ev.get("Application"), ev.get("Context"))
                  for ev in getattr(channels, "events", ()) if ev.name == "CoreShowChannel"]
        # AGI's "EXEC StartMusicOnHold" shows as the channel's application: not "AGI" (re-adoption
        # used to skip every caller on hold because of that)
        assert (waiter, "StartMusicOnHold", "hotline") in in_agi, in_agi
        await service.start()
        assert time.monotonic() - killed_at < 60
        # agent1009 takes back its last logged state (it was on the bridged call): nobody logs in again
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{http_port}/api/agents/agent1009",
                headers={"Authorization": f"Bearer {tokens['agent1009']}"}) as r:
            assert r.status == 200 and (await r.json())["state"] == "ready", await r.text()
        await api_ready(http_port, tokens["agent1010"], "agent1010")
        await until(lambda: has_kind(pg_dsn, waiter, "call.answered"), timeout=30,
                    what="the re-adopted caller answered")
        after = [e for e in await events_of(pg_dsn, waiter) if e["seq"] > old_max]
        assert after and min(e["seq"] for e in after) > adopted_seq_base(time.time() - 120)
        kinds = [e["kind"] for e in after]
        # back in line from its channel's variables: queue.resumed, the record keeps its one queue.joined
        assert kinds[:1] == ["queue.resumed"] and "call.answered" in kinds
        resumed = json.loads(after[0]["data"])
        assert (resumed["topic"], resumed["province"], resumed["province_source"]) == \
            ("health.card", "ho-chi-minh", "adopted")
        assert [e["kind"] for e in await events_of(pg_dsn, waiter)].count("queue.joined") == 1
        conn = await asyncpg.connect(pg_dsn, timeout=10)
        try:
            source = await conn.fetchval("SELECT province_source FROM calls WHERE call_id = $1",
                                         after[0]["call_id"], timeout=5)
        finally:
            await conn.close()
        assert source != "adopted", source   # the first join's source stays
        answered = json.loads(after[kinds.index("call.answered")]["data"])
        assert answered["agent_id"] == "agent1010"
        assert {e["call_id"] for e in before} == {e["call_id"] for e in after}   # the same call record
        assert not bridged.done()
        # the call that stayed bridged through the restart was taken back too: its hang-up closes it
        talk_before = await events_of(pg_dsn, talker)
        assert "call.ended" not in [e["kind"] for e in talk_before]
        assert (await bridged).ok
        await until(lambda: has_kind(pg_dsn, talker, "call.ended"), timeout=20,
                    what="the bridged call closed by the new process")
        talk_after = [e for e in await events_of(pg_dsn, talker) if e["seq"] > max(x["seq"] for x in talk_before)]
        kinds = [e["kind"] for e in talk_after]
        assert "agent.ended" in kinds and "call.ended" in kinds, kinds
        ended = json.loads(talk_after[kinds.index("call.ended")]["data"])
        agent_ended = json.loads(talk_after[kinds.index("agent.ended")]["data"])
        assert ended["outcome"] == "answered" and ended["duration_s"] > 60   # the whole call, not since the restart
        assert agent_ended["agent_id"] == "agent1009" and agent_ended["talk_s"] > 50
    finally:
        for t in callers:
            t.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        await service.stop()
        for p in phones:
            await p.stop()
        await hang_up_leftovers(stack_env)


async def process_and_phones(stack_env: dict[str, str], pg_dsn: str, tmp_path: Path,
                             agents: tuple[str, ...] = ("agent1009", "agent1010"),
                             ) -> tuple[int, dict[str, str], ServiceProcess, list[SippAgent]]:
    """The service as a process (not started yet), an agent token and a SIPp phone (not started)
    for each of ``agents``: (its HTTP port, tokens by agent, the process, the phones)."""
    config, http_port = await service_config(stack_env, pg_dsn, tmp_path)
    tokens = {a: (await run_cli(config, "tokens", "create", "--role", "agent", "--agent", a,
                                "--name", "e2e")).strip().splitlines()[-1] for a in agents}
    service = ServiceProcess(config, tmp_path / "service.log", http_port)
    secret = agents_secret(stack_env)
    phones = [SippAgent(endpoint=a, password=sip_password(secret, a), remote=sip_remote(stack_env),
                        port=free_port(), talk=None) for a in agents]
    return http_port, tokens, service, phones


async def start_with_one_agent_ready(http_port: int, tokens: dict[str, str], service: ServiceProcess,
                                     phones: list[SippAgent]) -> None:
    """Start the phones and the service; agent1009 ready, agent1010 logged out for now (the service
    restores the states an earlier test of this session logged in the same database: log it out
    if it came back ready)."""
    for p in phones:
        await p.start()
    await service.start()
    await asyncio.sleep(1.0)   # DeviceStateChange of the new registrations
    await api_logout_if_in(http_port, tokens["agent1010"], "agent1010")
    await api_ready(http_port, tokens["agent1009"], "agent1009")


async def api_logout_if_in(port: int, token: str, agent_id: str) -> None:
    """Log ``agent_id`` out through the API; one already logged out (409) is fine."""
    async with aiohttp.ClientSession() as s, s.post(
            f"http://127.0.0.1:{port}/api/agents/{agent_id}/logout", json={},
            headers={"Authorization": f"Bearer {token}"}, timeout=aiohttp.ClientTimeout(total=5)) as r:
        assert r.status in (200, 409), await r.text()
