"""Call tracker replay: exact states from a call's event stream, mid-call join, resync."""

from __future__ import annotations

import random

from switchboard.ami.protocol import AmiParser, Event
from switchboard.ami.samples import BANNER, call_frames
from switchboard.ami.tracker import CallTracker


def _events(frames: list[str]) -> list[Event]:
    data = BANNER + "".join(f + "\r\n" for f in frames).encode()
    return [m for m in AmiParser().feed(data) if isinstance(m, Event)]


def test_replay_of_one_call_gives_exact_states() -> None:
    frames = call_frames(5, random.Random(3))
    events = _events(frames)
    t = CallTracker()
    seen_bridged = False
    for ev in events:
        t.handle(ev)
        call = t.call("1750000005.10")
        if call is not None and call.bridged:
            seen_bridged = True
            caller = t.channel("1750000005.10")
            agent = t.channel("1750000005.11")
            assert caller is not None and agent is not None
            assert caller.up and agent.up and caller.bridge == agent.bridge
            assert agent.dialed_by == "1750000005.10" and agent.dial_status == "ANSWER"
            assert caller.variables["SB_CALL_ID"] == "1750000005.10"
            assert agent.linkedid == caller.linkedid
    assert seen_bridged
    assert t.channels() == () and t.warnings == 0
    ended = t.drain_ended()
    assert [c.uniqueid for c in ended] == ["1750000005.10", "1750000005.11"]
    assert all(c.hangup_cause == "16" for c in ended)


def test_join_mid_call_is_a_warning_not_a_crash() -> None:
    events = _events(call_frames(7, random.Random(1)))
    late = [e for e in events if e.name not in ("Newchannel",)][10:]
    t = CallTracker()
    for ev in late:
        t.handle(ev)
    assert t.warnings >= 1
    assert t.channels() == ()
    assert len(t.drain_ended()) == 2


def test_resync_from_core_show_channels_rebuilds() -> None:
    t = CallTracker()
    for ev in _events(call_frames(1, random.Random(2)))[:8]:
        t.handle(ev)
    assert t.channel("1750000001.2") is not None
    listing = [
        Event("CoreShowChannel", {"Channel": "PJSIP/trunk-0000000a", "Uniqueid": "9.1", "Linkedid": "9.1",
                                  "ChannelState": "6", "ChannelStateDesc": "Up", "CallerIDNum": "0243",
                                  "Application": "AGI", "ApplicationData": "agi:async", "BridgeId": ""}),
    ]
    t.resync(listing)
    assert [c.uniqueid for c in t.channels()] == ["9.1"]
    snap = t.channel("9.1")
    assert snap is not None and snap.up and snap.bridge is None and snap.caller_num == "0243"
