"""Replays of AMI traffic captured from the real Asterisk 22 (tests/fixtures/ami/*.ami).

``agi_call_originate.ami`` (tests/e2e/test_ami_capture.py, all-privileges
user, narrowed to the two calls): a SIPp caller 02439990001 dials 19009068,
the hotline hands it to AGI(agi:async) and the service runs ANSWER,
SET VARIABLE SB_TEST, SET VARIABLE OTHER, GET DATA (the caller sends 4 and 2
as SIP INFO) and HANGUP; then an Originate of Local/19009068@hotline whose
;2 half enters AsyncAGI and gets ANSWER and HANGUP.

``restart_before.ami`` / ``restart_after.ami`` (tests/e2e/test_ami_client.py,
the service's own user): the last bytes of a connection when Asterisk runs
``core restart now``, and the first ones of the next connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path

from switchboard.ami.agi import AgiManager, AgiResult, AgiSession, parse_agi_env, parse_agi_result
from switchboard.ami.protocol import Action, AmiParser, Banner, Event, Headers, Response
from switchboard.ami.tracker import CallTracker

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ami"
SIP_UID, LOCAL1_UID, LOCAL2_UID = "1795654514.4", "1795654516.5", "1795654516.6"


def _events(name: str) -> list[Event]:
    return [m for m in AmiParser().feed((FIXTURES / name).read_bytes()) if isinstance(m, Event)]


def test_tracker_replay_gives_exact_channels_calls_and_variables() -> None:
    tracker = CallTracker()
    peak = 0
    states: list[tuple[str, int]] = []
    for ev in _events("agi_call_originate.ami"):
        tracker.handle(ev)
        peak = max(peak, len(tracker.channels()))
        if ev.name == "Newstate":
            chan = tracker.channel(ev["Uniqueid"])
            assert chan is not None
            states.append((chan.uniqueid, chan.state))
        if ev.name == "OriginateResponse":
            call = tracker.call(LOCAL1_UID)
            assert call is not None
            assert sorted(c.uniqueid for c in call.channels) == [LOCAL1_UID, LOCAL2_UID]
            assert all(c.up for c in call.channels)
    assert peak == 2 and tracker.warnings == 0
    assert tracker.channels() == () and tracker.calls() == {}
    assert states == [(SIP_UID, 6), (LOCAL2_UID, 6), (LOCAL1_UID, 6)]
    ended = {c.uniqueid: c for c in tracker.drain_ended()}
    assert list(ended) == [SIP_UID, LOCAL2_UID, LOCAL1_UID]  # hang-up order
    sip, local1, local2 = ended[SIP_UID], ended[LOCAL1_UID], ended[LOCAL2_UID]
    assert (sip.channel, sip.linkedid, sip.caller_num, sip.context, sip.exten) == (
        "PJSIP/trunk-00000004", SIP_UID, "02439990001", "hotline", "19009068")
    # SB_* only (the inherited __SB_DID as SB_DID); OTHER, HB, AGISTATUS, RTPAUDIOQOS... are not kept
    assert dict(sip.variables) == {"SB_DID": "19009068", "SB_TEST": "captured"}
    assert (local1.linkedid, local2.linkedid) == (LOCAL1_UID, LOCAL1_UID)
    assert local1.channel == "Local/19009068@hotline-00000000;1" and local1.dial_status == "ANSWER"
    assert local2.channel == "Local/19009068@hotline-00000000;2" and dict(local2.variables) == {"SB_DID": "19009068"}
    assert {c.hangup_cause for c in ended.values()} == {"0"}  # AGI HANGUP: no cause given


def test_agi_results_of_the_capture_parse_exactly() -> None:
    events = _events("agi_call_originate.ami")
    starts = [e for e in events if e.name == "AsyncAGIStart"]
    env = parse_agi_env(starts[0]["Env"])
    assert (env["agi_request"], env["agi_channel"], env["agi_callerid"], env["agi_extension"], env["agi_context"],
            env["agi_uniqueid"]) == ("async", "PJSIP/trunk-00000004", "02439990001", "19009068", "hotline", SIP_UID)
    assert parse_agi_env(starts[1]["Env"])["agi_channel"] == "Local/19009068@hotline-00000000;2"
    execs = [(e["Uniqueid"], parse_agi_result(e["Result"])) for e in events if e.name == "AsyncAGIExec"]
    assert [(uid, r.code, r.result, r.data, r.endpos) for uid, r in execs] == [
        (SIP_UID, 200, "0", "", None),   # ANSWER
        (SIP_UID, 200, "1", "", None),   # SET VARIABLE SB_TEST
        (SIP_UID, 200, "1", "", None),   # SET VARIABLE OTHER
        (SIP_UID, 200, "42", "", None),  # GET DATA: the two DTMF digits
        (SIP_UID, 200, "1", "", None),   # HANGUP
        (LOCAL2_UID, 200, "0", "", None),
        (LOCAL2_UID, 200, "1", "", None),
    ]
    assert all(e.get("CommandId") for e in events if e.name == "AsyncAGIExec")  # CommandId, not CommandID


class ReplayAmi:
    """Plays the captured AsyncAGIExec of a channel back as the answer to each AGI action, in FIFO order.

    Same send/subscribe/on_resync surface as AmiClient; the captured frame is
    delivered unchanged except for its CommandId, set to the one the session sent.
    """

    def __init__(self, events: list[Event]) -> None:
        self.execs: dict[str, deque[Event]] = {}
        self.uid_of: dict[str, str] = {}
        for ev in events:
            if ev.name == "AsyncAGIExec":
                self.execs.setdefault(ev["Uniqueid"], deque()).append(ev)
            if ev.name == "AsyncAGIStart":
                self.uid_of[ev["Channel"]] = ev["Uniqueid"]
        self.callbacks: list[object] = []
        self.sent: list[Action] = []

    async def send(self, action: Action, *, timeout: float | None = None) -> Response:
        self.sent.append(action)
        captured = self.execs[self.uid_of[str(action.headers["Channel"])]].popleft()
        pairs = [(k, str(action.headers["CommandID"]) if k == "CommandId" else v)
                 for k, v in captured.headers.items_all()]
        asyncio.get_running_loop().call_soon(self.emit, Event("AsyncAGIExec", Headers.from_pairs(pairs)))
        return Response("Success", Headers({"ActionID": "x", "Message": "Added AGI command to queue"}))

    def subscribe(self, callback: object, *, names: frozenset[str] | None = None) -> object:
        self.callbacks.append(callback)
        return lambda: None

    def emit(self, ev: Event) -> None:
        for cb in self.callbacks:
            cb(ev)  # type: ignore[operator]


async def test_agi_manager_replay_resolves_every_command_and_closes_sessions() -> None:
    events = _events("agi_call_originate.ami")
    ami = ReplayAmi(events)
    results: dict[str, list[AgiResult]] = {}
    finished: dict[str, asyncio.Event] = {}
    sessions: list[AgiSession] = []

    async def on_start(session: AgiSession) -> None:
        sessions.append(session)
        out = results.setdefault(session.uniqueid, [])
        commands = (["ANSWER", "SET VARIABLE SB_TEST captured", "SET VARIABLE OTHER not-for-us",
                     "GET DATA silence/1 8000 2", "HANGUP"] if session.channel.startswith("PJSIP/")
                    else ["ANSWER", "HANGUP"])
        for command in commands:
            out.append(await session.execute(command, timeout=2))
        finished[session.uniqueid].set()

    manager = AgiManager(ami, on_start=on_start)  # type: ignore[arg-type]
    for ev in events:
        if ev.name == "AsyncAGIExec":
            continue  # played back by ReplayAmi as the answers to the commands
        if ev.name == "AsyncAGIStart":
            finished[ev["Uniqueid"]] = asyncio.Event()
        if ev.name == "AsyncAGIEnd":  # the capture's order: every result came before AsyncAGIEnd
            await asyncio.wait_for(finished[ev["Uniqueid"]].wait(), 2)
        ami.emit(ev)
        await asyncio.sleep(0)
    assert [s.uniqueid for s in sessions] == [SIP_UID, LOCAL2_UID]
    assert [(r.code, r.result) for r in results[SIP_UID]] == [(200, "0"), (200, "1"), (200, "1"), (200, "42"),
                                                              (200, "1")]
    assert [(r.code, r.result) for r in results[LOCAL2_UID]] == [(200, "0"), (200, "1")]
    assert all(s.closed and s.close_reason == "left AGI" for s in sessions)
    assert manager.sessions == {}
    assert [a.headers["Channel"] for a in ami.sent] == ["PJSIP/trunk-00000004"] * 5 + [
        "Local/19009068@hotline-00000000;2"] * 2
    assert all(not q for q in ami.execs.values())
    await manager.aclose()


def test_restart_capture_shutdown_then_new_startup_time() -> None:
    before = AmiParser().feed((FIXTURES / "restart_before.ami").read_bytes())
    after = AmiParser().feed((FIXTURES / "restart_after.ami").read_bytes())
    assert isinstance(before[0], Banner) and before[0].version == "11.0.0"  # AMI version of Asterisk 22
    last = before[-1]
    assert isinstance(last, Event) and last.name == "Shutdown"
    assert (last["Shutdown"], last["Restart"]) == ("Cleanly", "True")
    uptimes = [int(m["Uptime"]) for m in before + after if isinstance(m, Event) and m.name == "FullyBooted"]
    assert uptimes == [218, 0]
    stamps = [(m.headers["CoreStartupDate"], m.headers["CoreStartupTime"])
              for m in before + after if isinstance(m, Response) and m.action_id in ("st-before", "st-after")]
    assert stamps == [("2026-11-26", "00:52:44"), ("2026-11-26", "00:56:23")]  # what tells a restart


async def test_restart_rebuilds_tracker_and_closes_agi_sessions_from_the_capture() -> None:
    events = _events("agi_call_originate.ami")
    mid_call = events[: next(i for i, e in enumerate(events) if e.name == "AsyncAGIEnd")]
    tracker = CallTracker()
    ami = ReplayAmi(events)
    sessions: list[AgiSession] = []
    manager = AgiManager(ami, on_start=sessions.append)  # type: ignore[arg-type]
    for ev in mid_call:
        tracker.handle(ev)
        manager.handle_event(ev)
    await asyncio.sleep(0)  # on_start runs in its own task
    assert [c.uniqueid for c in tracker.channels()] == [SIP_UID] and len(sessions) == 1
    listing = [e for e in _events("restart_after.ami") if e.action_id == "ch-after"]
    assert [e.name for e in listing] == ["CoreShowChannelsComplete"] and listing[0]["ListItems"] == "0"
    tracker.resync(listing)
    manager.handle_resync(True)
    assert tracker.channels() == ()
    assert sessions[0].closed and sessions[0].close_reason == "Asterisk restarted" and manager.sessions == {}
    await manager.aclose()


def test_synthetic_samples_have_the_layout_of_the_capture() -> None:
    """The benchmark's synthetic stream (samples.py) writes frames as Asterisk 22 does."""
    import random

    from switchboard.ami.samples import BANNER, call_frames

    captured: dict[str, list[str]] = {}
    for ev in _events("agi_call_originate.ami"):
        captured.setdefault(ev.name, list(ev.headers))
    data = BANNER + "".join(f + "\r\n" for f in call_frames(3, random.Random(5))).encode()
    synthetic: dict[str, list[str]] = {}
    msgs = AmiParser().feed(data)
    assert isinstance(msgs[0], Banner) and msgs[0].version == "11.0.0"
    for m in msgs:
        if isinstance(m, Event):
            synthetic.setdefault(m.name, list(m.headers))
    for name in ("Newchannel", "Newstate", "VarSet", "AsyncAGIStart", "AsyncAGIExec", "AsyncAGIEnd", "Hangup"):
        assert synthetic[name] == captured[name], name
    env_keys = [list(parse_agi_env(e["Env"])) for e in _events("agi_call_originate.ami") if e.name == "AsyncAGIStart"]
    synth_env = [list(parse_agi_env(m["Env"])) for m in msgs if isinstance(m, Event) and m.name == "AsyncAGIStart"]
    assert synth_env[0] == env_keys[0]
    assert parse_agi_result(next(m for m in msgs if isinstance(m, Event) and m.name == "AsyncAGIExec")["Result"]).code \
        == 200
