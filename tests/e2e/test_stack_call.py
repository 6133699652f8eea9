"""The foundation's end-to-end proof: a SIPp caller dials the hotline number
on the real Asterisk 22, the dialplan hands the call to AGI(agi:async), and
the service's AGI layer answers it, reads DTMF digits sent as SIP INFO, plays
a prompt and hangs up. With a stale heartbeat the same call goes to the
fallback queue instead.
"""

from __future__ import annotations

import asyncio

import pytest
from e2e_stack import ami_settings, put_heartbeat, sip_remote

from switchboard.ami.agi import AgiManager, AgiSession
from switchboard.ami.client import AmiClient, ListResponse
from switchboard.demo.sipp import AwaitHangup, Dtmf, HangUp, Pause, caller_scenario, run_sipp

pytestmark = pytest.mark.e2e


async def test_hotline_call_reaches_async_agi_and_is_driven_by_agi_commands(stack_env: dict[str, str]) -> None:
    client = AmiClient(ami_settings(stack_env))
    await client.start(timeout=10)
    seen: dict[str, object] = {}
    done = asyncio.Event()

    async def on_start(session: AgiSession) -> None:
        seen["env"] = dict(session.env)
        seen["answer"] = await session.execute("ANSWER", timeout=10)
        seen["digits"] = await session.execute("GET DATA silence/1 8000 2", timeout=15)
        seen["play"] = await session.execute('STREAM FILE silence/1 ""', timeout=10)
        seen["hangup"] = await session.execute("HANGUP", timeout=10)
        done.set()

    manager = AgiManager(client, on_start=on_start)
    try:
        await put_heartbeat(client)
        scenario = caller_scenario([Pause(1.5), Dtmf("42"), AwaitHangup(30)], caller="02437654321")
        result = await run_sipp(scenario, remote=sip_remote(stack_env), service="19009068", timeout=45)
        await asyncio.wait_for(done.wait(), 10)
        assert result.ok, result.errors or result.stderr
        env = seen["env"]
        assert isinstance(env, dict)
        assert env["agi_context"] == "hotline"
        assert env["agi_extension"] == "19009068"
        assert env["agi_callerid"] == "02437654321"
        assert env["agi_request"] == "async"
        assert seen["answer"].code == 200 and seen["answer"].result == "0"  # type: ignore[attr-defined]
        assert seen["digits"].result == "42"                                 # type: ignore[attr-defined]
        assert seen["play"].code == 200                                      # type: ignore[attr-defined]
    finally:
        await manager.aclose()
        await client.close()


async def test_stale_heartbeat_sends_the_caller_to_the_fallback_queue(stack_env: dict[str, str]) -> None:
    client = AmiClient(ami_settings(stack_env))
    await client.start(timeout=10)
    agi_starts: list[str] = []

    def on_start(session: AgiSession) -> None:
        agi_starts.append(session.channel)

    manager = AgiManager(client, on_start=on_start)
    try:
        await put_heartbeat(client, age=3600)        # the service "died" an hour ago
        scenario = caller_scenario([Pause(4), HangUp()], caller="0909123456")
        sipp = asyncio.create_task(run_sipp(scenario, remote=sip_remote(stack_env), service="19009068", timeout=30))
        entries: list[str] = []
        for _ in range(30):
            await asyncio.sleep(0.2)
            status = await client.send({"Action": "QueueStatus", "Queue": "hotline-fallback"}, timeout=5)
            assert isinstance(status, ListResponse)
            entries = [ev.get("CallerIDNum") or "" for ev in status.events if ev.name == "QueueEntry"]
            if entries:
                break
        result = await sipp
        assert entries == ["0909123456"]
        assert agi_starts == []                       # the service was bypassed
        assert result.ok, result.errors or result.stderr
    finally:
        await put_heartbeat(client)
        await manager.aclose()
        await client.close()
