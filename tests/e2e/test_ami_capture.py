"""Real Asterisk 22 AMI traffic of a hotline call and an Originate, and the manager.conf filter.

``test_capture_agi_call_and_originate`` records (as the all-privileges user,
so the recording holds every event class) a SIPp call driven over AsyncAGI
(ANSWER, SET VARIABLE, GET DATA with DTMF sent as SIP INFO, HANGUP) and an
Originate of a Local channel into the hotline. The recording is narrowed to
the frames of these two calls (other sessions share this Asterisk) and
checked by replay; with ``SB_CAPTURE_AMI=1`` it is written to
``tests/fixtures/ami/agi_call_originate.ami`` for the unit replay tests.

``test_manager_conf_passes_only_sb_varset`` checks the deployed
``eventfilter`` lines: the service user gets ``VarSet`` of ``SB_*`` variables
and no other ``VarSet``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from e2e_stack import ami_settings, put_heartbeat, sip_remote

from switchboard.ami.agi import AgiManager, AgiResult, AgiSession, parse_agi_env, parse_agi_result
from switchboard.ami.capture import AmiRecorder, frames_of_calls
from switchboard.ami.client import AmiClient
from switchboard.ami.protocol import AmiParser, Event, Response
from switchboard.ami.tracker import CallTracker
from switchboard.demo.sipp import AwaitHangup, Dtmf, Pause, caller_scenario, run_sipp

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
CALLER = "02439990001"
ORIGINATE_CALLER = "02439990002"


def _recorder(env: dict[str, str], *, admin: bool) -> AmiRecorder:
    s = ami_settings(env, admin=admin)
    return AmiRecorder(s.host, s.port, s.username, s.resolved_secret())


async def _drive_call(client: AmiClient, env: dict[str, str], results: dict[str, list[AgiResult]],
                      linkedids: list[str]) -> None:
    done = asyncio.Event()
    local_done = asyncio.Event()

    async def on_start(session: AgiSession) -> None:
        caller = session.env.get("agi_callerid")
        if caller not in (CALLER, ORIGINATE_CALLER):
            return  # another session's call on the shared Asterisk: not ours to drive
        linkedids.append(session.linkedid)
        out = results.setdefault("local" if caller == ORIGINATE_CALLER else "sip", [])
        out.append(await session.execute("ANSWER", timeout=10))
        if caller == ORIGINATE_CALLER:
            out.append(await session.execute("HANGUP", timeout=10))
            local_done.set()
            return
        out.append(await session.execute("SET VARIABLE SB_TEST captured", timeout=10))
        out.append(await session.execute("SET VARIABLE OTHER not-for-us", timeout=10))
        out.append(await session.execute("GET DATA silence/1 8000 2", timeout=15))
        out.append(await session.execute("HANGUP", timeout=10))
        done.set()

    manager = AgiManager(client, on_start=on_start)
    try:
        await put_heartbeat(client)
        scenario = caller_scenario([Pause(1.5), Dtmf("42"), AwaitHangup(30)], caller=CALLER)
        sipp = await run_sipp(scenario, remote=sip_remote(env), service="19009068", timeout=40)
        await asyncio.wait_for(done.wait(), 10)
        assert sipp.ok, sipp.errors or sipp.stderr
        answer = await client.send({"Action": "Originate", "Channel": "Local/19009068@hotline",
                                    "Application": "Wait", "Data": "5", "CallerID": f"Originate <{ORIGINATE_CALLER}>",
                                    "Async": "true"}, timeout=10)
        assert answer.success, answer.message
        await asyncio.wait_for(local_done.wait(), 15)
        await asyncio.sleep(1.5)  # the trailing Hangup / OriginateResponse events
    finally:
        await manager.aclose()


async def test_capture_agi_call_and_originate(stack_env: dict[str, str]) -> None:
    recorder = _recorder(stack_env, admin=True)
    await recorder.start()
    client = AmiClient(ami_settings(stack_env))
    await client.start(timeout=10)
    results: dict[str, list[AgiResult]] = {}
    linkedids: list[str] = []
    try:
        await _drive_call(client, stack_env, results, linkedids)
    finally:
        await client.close()
        raw = await recorder.stop()
    sip, local = results["sip"], results["local"]
    assert [r.code for r in sip] == [200] * 5 and sip[3].result == "42"
    assert [r.code for r in local] == [200, 200]
    data = frames_of_calls(raw, set(linkedids))
    events = [m for m in AmiParser().feed(data) if isinstance(m, Event)]
    # the replay gives what the live run saw
    starts = [e for e in events if e.name == "AsyncAGIStart"]
    assert len(starts) == 2
    assert parse_agi_env(starts[0]["Env"])["agi_callerid"] == CALLER
    execs = [parse_agi_result(e["Result"]) for e in events if e.name == "AsyncAGIExec"]
    assert [(r.code, r.result) for r in execs] == [(r.code, r.result) for r in sip + local]
    tracker = CallTracker()
    for ev in events:
        tracker.handle(ev)
    assert tracker.channels() == () and tracker.warnings == 0
    ended = tracker.drain_ended()
    assert {c.linkedid for c in ended} == set(linkedids)
    caller = next(c for c in ended if c.caller_num == CALLER and c.channel.startswith("PJSIP/"))
    assert caller.variables.get("SB_TEST") == "captured" and "OTHER" not in caller.variables
    assert any(e.name == "OriginateResponse" and e.get("Response") == "Success" for e in events)
    if os.environ.get("SB_CAPTURE_AMI") == "1":
        (FIXTURES / "agi_call_originate.ami").write_bytes(data)


async def test_manager_conf_passes_only_sb_varset(stack_env: dict[str, str]) -> None:
    """Needs deploy/asterisk/manager.conf rendered into the running stack (stack-up)."""
    client = AmiClient(ami_settings(stack_env))
    varsets: list[tuple[str, str]] = []
    names: set[str] = set()

    def on_event(ev: Event) -> None:
        names.add(ev.name)
        if ev.name == "VarSet":
            varsets.append((ev.get("Linkedid") or "", ev.get("Variable") or ""))

    client.subscribe(on_event)
    await client.start(timeout=10)
    results: dict[str, list[AgiResult]] = {}
    linkedids: list[str] = []
    try:
        await _drive_call(client, stack_env, results, linkedids)
    finally:
        await client.close()
    mine = {name for linkedid, name in varsets if linkedid in linkedids}
    assert "SB_TEST" in mine
    assert "__SB_DID" in mine or "SB_DID" in mine  # inherited variables keep their underscores
    assert "OTHER" not in mine
    assert all(name.lstrip("_").startswith("SB_") for name in mine), mine
    assert "Newexten" not in names  # dialplan class is read for VarSet only


async def test_varset_filter_expression_on_the_live_asterisk(stack_env: dict[str, str]) -> None:
    """The manager.conf VarSet filter, added per session with the Filter action (no re-render needed)."""
    recorder = _recorder(stack_env, admin=True)
    await recorder.start()
    recorder.send(b"Action: Filter\r\nActionID: f1\r\nOperation: Add\r\n"
                  b"MatchCriteria: action(include),name(VarSet),header(Variable),method(regex)\r\n"
                  b"Filter: ^_?_?SB_\r\n\r\n")
    client = AmiClient(ami_settings(stack_env))
    await client.start(timeout=10)
    results: dict[str, list[AgiResult]] = {}
    linkedids: list[str] = []
    try:
        await _drive_call(client, stack_env, results, linkedids)
    finally:
        await client.close()
        raw = await recorder.stop()
    msgs = AmiParser().feed(raw)
    accepted = [m for m in msgs if isinstance(m, Response) and m.action_id == "f1"]
    assert accepted and accepted[0].success
    events = [m for m in msgs if isinstance(m, Event)]
    mine = [e for e in events if e.get("Linkedid") in linkedids]
    assert {e.name for e in mine} == {"VarSet"}
    variables = {e["Variable"] for e in mine}
    assert "SB_TEST" in variables and "OTHER" not in variables
    assert all(v.lstrip("_").startswith("SB_") for v in variables), variables
