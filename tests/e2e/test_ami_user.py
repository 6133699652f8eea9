"""The shipped AMI user (deploy/asterisk/manager.conf as stack-up renders it) cannot make
Asterisk run commands, and what the service needs still works (issue 11, item 2).

Without the ``system`` write class, Asterisk 22's Originate guard (manager.c,
``is_originate_app_permitted``, hardened for CVE-2024-42365) refuses System, AGI, Exec,
MixMonitor... as the Originate application, and the ``MixMonitor`` action (system class
only) is refused with its ``Command``. The heartbeat (a global written with Setvar), the
status lists, Originate into our own contexts and of Bridge / ChanSpy, and call
recordings (the dialplan's MixMonitor) keep working.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from e2e_service import PENSION, REPO, running_service, until
from e2e_stack import ami_settings

from switchboard.ami.client import AmiClient, ListResponse
from switchboard.demo.sipp import Dtmf, HangUp, Pause
from switchboard.telephony import heartbeat

pytestmark = pytest.mark.e2e



@pytest.fixture
async def admin(stack_env: dict[str, str]) -> AsyncIterator[AmiClient]:
    client = AmiClient(ami_settings(stack_env, admin=True))
    await client.start(timeout=10)
    try:
        yield client
    finally:
        await client.close()


async def _originate(client: AmiClient, **fields: str) -> tuple[bool, str]:
    resp = await client.send({"Action": "Originate", "Async": "true", "Timeout": "3000", **fields}, timeout=10)
    return resp.success, resp.message


async def test_the_shipped_user_cannot_run_shell_commands(stack_env: dict[str, str], ami: AmiClient,
                                                          admin: AmiClient) -> None:
    marker = f"sb-pwned-{uuid.uuid4().hex[:8]}"
    victim = Path(stack_env["STACK_ASTERISK_ROOT"]) / "tmp" / marker
    # a Local channel that answers (the hotline's fallback queue answers when no service beats)
    await admin.send(heartbeat.put_action(0), timeout=5)
    channel = "Local/0999@hotline"
    for app, data in (("System", f"touch /tmp/{marker}"),
                      ("AGI", "/bin/sh"),
                      ("AGI", f"/bin/sh,-c,touch /tmp/{marker}"),
                      ("Exec", f"System(touch /tmp/{marker})"),
                      ("MixMonitor", f"/tmp/{marker}.wav,,touch /tmp/{marker}"),
                      ("NoOp", f"${{SHELL(touch /tmp/{marker})}}"),
                      ("NoOp", "${DB(switchboard/heartbeat)}")):
        ok, message = await _originate(ami, Channel=channel, Application=app, Data=data)
        assert not ok and "Forbidden" in message, (app, data, message)
    # the MixMonitor action (and its Command) needs the system class
    resp = await ami.send({"Action": "MixMonitor", "Channel": channel, "File": f"/tmp/{marker}.wav",
                               "Command": f"touch /tmp/{marker}"}, timeout=5)
    assert not resp.success and resp.message == "Permission denied", resp.message
    for action in ({"Action": "DBPut", "Family": "switchboard", "Key": "probe", "Val": "1"},
                   {"Action": "Command", "Command": "core show version"},
                   {"Action": "ModuleLoad", "Module": "app_system.so", "LoadType": "load"}):
        resp = await ami.send(action, timeout=5)
        assert not resp.success and resp.message == "Permission denied", (action, resp.message)
    # Setvar of DB() is accepted by the call class but does not write: AMI threads may not
    # run dangerous functions (escalations inhibited)
    await ami.send({"Action": "Setvar", "Variable": "DB(switchboard/probe)", "Value": "1"}, timeout=5)
    got = await admin.send({"Action": "DBGet", "Family": "switchboard", "Key": "probe"}, timeout=5)
    assert not [ev.get("Val") for ev in getattr(got, "events", ()) if ev.get("Val")]
    await asyncio.sleep(2)
    assert not victim.exists()
    # the same Originate with the test-only admin user (system class) is not refused: the guard is real
    ok, message = await _originate(admin, Channel="PJSIP/nobody-here", Application="System", Data="true")
    assert ok, message


async def test_what_the_service_needs_is_permitted(stack_env: dict[str, str], ami: AmiClient) -> None:
    epoch = int(time.time())
    assert (await ami.send(heartbeat.put_action(epoch), timeout=5)).success
    got = await ami.send(heartbeat.get_action(), timeout=5)
    assert got.success and got.headers.get("Value") == str(epoch)
    assert (await ami.send(heartbeat.put_action(0), timeout=5)).success
    for name in ("CoreShowChannels", "DeviceStateList"):
        resp = await ami.send({"Action": name}, timeout=5)
        assert resp.success and isinstance(resp, ListResponse), (name, resp.message)
    assert (await ami.send({"Action": "CoreStatus"}, timeout=5)).success
    # Originate into our own contexts, and of the applications we use (Bridge; ChanSpy for
    # supervisors): queued (the endpoint does not exist, so the call itself fails later)
    for fields in ({"Context": "agent-leg", "Exten": "bridge", "Priority": "1"},
                   {"Context": "callback-out", "Exten": "0912345678", "Priority": "1"},
                   {"Context": "session-moderator", "Exten": "join", "Priority": "1"},
                   {"Application": "Bridge", "Data": "PJSIP/trunk-00000000,F(hotline-after^survey^1)"},
                   {"Application": "ChanSpy", "Data": "PJSIP/agent1001,qw"}):
        ok, message = await _originate(ami, Channel="PJSIP/nobody-here", **fields)
        assert ok, (fields, message)
    # the Q&A sessions' conference actions (classes call and reporting): refused only because
    # there is no such conference, never for want of a class
    for name in ("ConfbridgeMute", "ConfbridgeUnmute", "ConfbridgeKick", "ConfbridgeList"):
        resp = await ami.send({"Action": name, "Conference": "sb-qa-none", "Channel": "PJSIP/nobody"}, timeout=5)
        assert "permission" not in resp.message.lower(), (name, resp.message)


def _in_repo(asterisk_path: str, env: dict[str, str]) -> Path:
    return REPO / "recordings" / Path(asterisk_path).relative_to(env["STACK_RECORDINGS_IN_ASTERISK"])


async def test_a_bridged_call_is_still_recorded(stack_env: dict[str, str], pg_dsn: str) -> None:
    """The agent leg records through the dialplan (context agent-leg, MixMonitor b) now that
    the AMI user may not send MixMonitor; the caller still reaches the survey afterwards."""
    caller = "02838200031"
    async with running_service(stack_env, pg_dsn) as svc:
        agent = await svc.agent("agent1009", talk=4.0)
        steps: list[Pause | Dtmf | HangUp] = []
        for k in PENSION:
            steps += [Pause(2.5), Dtmf(k)]
        call = svc.call([*steps, Pause(16), HangUp()], caller=caller)
        cid = await svc.wait_call_id(caller)
        await svc.wait_event(cid, "call.answered", timeout=30)
        rec = await svc.wait_event(cid, "call.recording", timeout=10)
        assert rec.data["agent_id"] == "agent1009"
        wav = _in_repo(rec.data["path"], stack_env)
        await svc.wait_event(cid, "agent.ended", timeout=20)
        # written by the dialplan's MixMonitor (SIPp sends no RTP: the WAV holds its header only)
        await until(lambda: wav.is_file() and wav.read_bytes()[:4] == b"RIFF", timeout=15, what=f"recording {wav}")
        assert (await call).ok
        assert agent.calls_answered() == 1
        row, timeline = await svc.record(cid)
        assert row["agent_id"] == "agent1009"
        assert any(e["kind"] == "ivr.step" and "survey" in str(e["data"]) for e in timeline)
